/*
 * minimal_node: one chordsip node. Starts a new ring, or joins one through a
 * bootstrap peer; prints its id and address; optionally stays up for N
 * seconds (or until SIGINT/SIGTERM); then leaves the ring gracefully.
 *
 *   minimal_node [-l listen_addr] [-j bootstrap[,bootstrap...]] [-t seconds]
 *                [-o name=value]...
 *
 *   minimal_node -l 127.0.0.1:5000 -t 60        # first node, up for a minute
 *   minimal_node -j 127.0.0.1:5000 -t 10        # a second one joins it
 *
 * -o sets any node option (chordsip_config_set), e.g. -o op_timeout_ms=20000.
 *
 * Exit status 0 on success.
 */
#include <chordsip.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

/* Applies a `-o name=value` option (chordsip_config_set); 0 on success. */
static int set_option(chordsip_config *cfg, const char *prog, const char *option) {
    char name[64], err[256] = "";
    const char *eq = strchr(option, '=');
    if (eq == NULL || (size_t)(eq - option) >= sizeof name) {
        fprintf(stderr, "%s: -o %s: want name=value\n", prog, option);
        return -1;
    }
    memcpy(name, option, (size_t)(eq - option));
    name[eq - option] = 0;
    if (chordsip_config_set(cfg, name, eq + 1, err, sizeof err) != CHORDSIP_OK) {
        fprintf(stderr, "%s: -o %s: %s\n", prog, option, err);
        return -1;
    }
    return 0;
}

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static int fail(const char *what, chordsip_result rc) {
    fprintf(stderr, "minimal_node: %s: %s\n", what, chordsip_result_str(rc));
    return 1;
}

int main(int argc, char **argv) {
    const char *listen = NULL, *bootstrap = NULL;
    const char *options[16];
    int seconds = 0, n_options = 0, opt;
    while ((opt = getopt(argc, argv, "l:j:t:o:h")) != -1) {
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'j': bootstrap = optarg; break;
        case 't': seconds = atoi(optarg); break;
        case 'o':
            if (n_options == 16) {
                fprintf(stderr, "%s: at most 16 -o options\n", argv[0]);
                return 2;
            }
            options[n_options++] = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s [-l listen_addr] [-j bootstrap] [-t seconds] "
                            "[-o name=value]...\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }

    /* Configure: everything has a default; set what the command line gave. */
    chordsip_config *cfg = NULL;
    chordsip_result rc = chordsip_config_new(&cfg);
    if (rc != CHORDSIP_OK)
        return fail("config", rc);
    for (int i = 0; i < n_options; i++)
        if (set_option(cfg, "minimal_node", options[i]) != 0) {
            chordsip_config_free(cfg);
            return 2;
        }
    char err[256] = "";
    if (listen != NULL && (rc = chordsip_config_set(cfg, "listen", listen, err, sizeof err))) {
        fprintf(stderr, "minimal_node: listen %s: %s\n", listen, err);
        chordsip_config_free(cfg);
        return 2;
    }

    chordsip_node *node = NULL;
    rc = chordsip_node_new(cfg, &node, err, sizeof err);
    chordsip_config_free(cfg); /* the node keeps its own copy */
    if (rc != CHORDSIP_OK) {
        fprintf(stderr, "minimal_node: %s: %s\n", chordsip_result_str(rc), err);
        return 1;
    }

    /* NULL bootstrap: a new ring. Otherwise join through the first peer that answers. */
    rc = chordsip_node_join(node, bootstrap);
    if (rc != CHORDSIP_OK) {
        chordsip_node_free(node);
        return fail(bootstrap ? "join" : "start", rc);
    }

    char id[41], addr[64];
    if ((rc = chordsip_node_id(node, id, sizeof id)) ||
        (rc = chordsip_node_addr(node, addr, sizeof addr))) {
        chordsip_node_free(node);
        return fail("id/addr", rc);
    }
    printf("id %s\naddr %s\n%s\n", id, addr, bootstrap ? "joined" : "new ring");
    fflush(stdout);

    if (seconds > 0) {
        /* Library threads block all signals, so these handlers run on ours. */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        struct timespec tick = {0, 100 * 1000000L};
        for (int i = 0; i < seconds * 10 && !stop_requested; i++)
            nanosleep(&tick, NULL);

        chordsip_stats st;
        if (chordsip_node_stats(node, &st) == CHORDSIP_OK)
            printf("up %s: %llu messages sent, %llu received, %llu keys stored\n",
                   stop_requested ? "until signalled" : "for the time given",
                   (unsigned long long)st.msgs_sent, (unsigned long long)st.msgs_received,
                   (unsigned long long)st.stored_keys);
    }

    /* Hand our keys to the successor and tell the neighbours, then free. */
    rc = chordsip_node_leave(node, 2000);
    chordsip_node_free(node);
    if (rc != CHORDSIP_OK)
        return fail("leave", rc);
    printf("left\n");
    return 0;
}
