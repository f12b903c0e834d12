"""limitlab: where does a small transformer stop generalizing, and why?"""

__version__ = "0.1.0"
