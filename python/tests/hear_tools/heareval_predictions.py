"""heareval's predictions runner with the one fix today's pytorch-lightning needs.

heareval 2021.1.3 sets `trainer.fit_loop.current_epoch` before testing an event task (to pick
the postprocessing of the best validation epoch); pytorch-lightning 1.6-1.9 made that a
plain attribute that nothing reads (the trainer's `current_epoch` comes from
`fit_loop.epoch_progress.current.completed`), so event tasks fail with a KeyError on epoch 0
(hear-eval-kit issue 432, open). A property that writes that counter does what heareval meant. heareval's own files are left untouched; arguments are heareval's:

    python heareval_predictions.py embeddings/MODULE/TASK --grid faster
"""

import pytorch_lightning.loops.fit_loop as fit_loop


def _current_epoch(loop):
    return loop.epoch_progress.current.completed


def _set_current_epoch(loop, epoch):
    loop.epoch_progress.current.completed = epoch


fit_loop.FitLoop.current_epoch = property(_current_epoch, _set_current_epoch)

from heareval.predictions.runner import runner  # noqa: E402

if __name__ == "__main__":
    runner()
