from desktop.cli import main

# Guarded: the engine's worker processes use the "spawn" start method, which imports __main__ again.
if __name__ == "__main__":
    raise SystemExit(main())
