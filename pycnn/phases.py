"""The session's explicit state: its phases and the transitions between them.

The page's session is always in exactly one phase. A model change is no
transition (it may happen in any phase) but ends an evaluation; a run's end
goes to IDLE, or to EMPTY when there is no model to draw with.
"""

from __future__ import annotations

from .errors import SessionError

EMPTY, IDLE, TRAINING, STOPPING, EVALUATING = "empty", "idle", "training", "stopping", "evaluating"
PHASES = (EMPTY, IDLE, TRAINING, STOPPING, EVALUATING)
TRANSITIONS = {
    EMPTY: {IDLE, TRAINING},                 # a model loaded; a run (it makes a model)
    IDLE: {IDLE, TRAINING, EVALUATING},
    EVALUATING: {IDLE, TRAINING, EVALUATING},  # finished or cancelled; a run cancels it
    TRAINING: {STOPPING, IDLE, EMPTY},       # Stop asked; the run ended
    STOPPING: {IDLE, EMPTY},                 # the run ended, keeping the weights reached
}


def check(current: str, to: str, action: str) -> str:
    """``to`` if the session may go there from ``current``, else SessionError naming ``action``."""
    if to not in TRANSITIONS[current]:
        raise SessionError(f"cannot {action} while the session is {current}")
    return to
