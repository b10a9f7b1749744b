"""Shared by the PJSUA2 test agents: the call audio wiring they all need."""


def connect_call_audio(call, pj):
    """Connects each active audio stream of `call` both ways to the sound
    device (the null device in the tests): without it no RTP flows."""
    ci = call.getInfo()
    adm = pj.Endpoint.instance().audDevManager()
    for i, mi in enumerate(ci.media):
        if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            m = call.getAudioMedia(i)
            m.startTransmit(adm.getPlaybackDevMedia())
            adm.getCaptureDevMedia().startTransmit(m)
