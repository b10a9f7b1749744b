# The project's Python venv, target/pyenv, made from the python3 on PATH (or $PYTHON);
# sourced by scripts/python-tests.sh (the binding's tests) and scripts/plots.sh (charts).
# What goes into it is pinned: bindings/python/requirements-test.txt for the tests,
# scripts/lib/requirements-plots.txt (those and matplotlib) for the charts, all from PyPI.

# pyenv_make ROOT: creates ROOT/target/pyenv unless a working one is there (on Debian,
# installs python3.X-venv with apt-get when ensurepip is missing) and sets PY to its
# interpreter.
pyenv_make() {
    local root=$1 python=${PYTHON:-python3} ver
    local venv="$root/target/pyenv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pip' 2>/dev/null; then
        rm -rf "$venv"
        if ! "$python" -m venv "$venv" 2>/dev/null; then
            # Debian splits ensurepip out of the interpreter.
            rm -rf "$venv"
            if command -v apt-get >/dev/null; then
                ver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
                export DEBIAN_FRONTEND=noninteractive
                apt-get update -qq
                apt-get install -y -qq "python$ver-venv" </dev/null \
                    || apt-get install -y -qq python3-venv </dev/null
            fi
            "$python" -m venv "$venv"
        fi
    fi
    PY="$venv/bin/python"
}
