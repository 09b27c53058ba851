"""The alignment lens: what instruction tuning changed, token by token (token shift, URIAL, ICLR 2024).

Qt-free and engine-agnostic: ``shift`` is the maths, ``preset`` the in-context alignment text,
``analyze`` one prompt on a pair of ``desktop.engine.model.Model`` objects, ``experiment`` a resumable
run over a prompt set and ``report`` its report. The CLI (``tandem shift``, ``tandem experiment``) and,
later, Compare's "Alignment" view call these.
"""
