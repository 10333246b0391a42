"""The passes of ``lpu-opt`` and their registry (``PASSES``: name -> ModulePass class)."""
