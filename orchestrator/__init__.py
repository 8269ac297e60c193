"""orchestrator: run language-model scaling sweeps and read them as curves.

The data flows one way: config -> plan -> execute -> store -> record -> analyse.
"""

__version__ = "0.1.0"
