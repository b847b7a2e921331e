"""VapourSynth filter (see plugins/vapoursynth)."""
