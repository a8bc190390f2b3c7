"""What `make run` shows in the terminal (bot/progress.py): the training's progress read from
Rasa's own output, and the processes' error lines repeated from their log files."""

from __future__ import annotations

import sys

import pytest

from bot.progress import ErrorEcho, run_with_progress, training_status

# as `rasa train` writes it (tqdm's bar rewrites itself with carriage returns)
TRAIN_LOG = (
    "2026-12-04 05:28:55 INFO     rasa.engine.training.hooks  - Finished training component "
    "'CountVectorsFeaturizer'.\n"
    "2026-12-04 05:28:58 INFO     rasa.engine.training.hooks  - Starting to train component "
    "'DIETClassifier'.\n"
    "Epochs:   0%|          | 0/40 [00:00<?, ?it/s]\rEpochs:   2%|▎         | 1/40 [00:06<04:05, "
    " 6.29s/it]\rEpochs:  35%|███▌      | 14/40 [00:31<00:44,  1.71s/it, t_loss=4.1, i_acc=0.999]"
)


def test_the_training_status_names_the_component_and_its_epochs():
    assert training_status("Loading data...\n") is None
    first = TRAIN_LOG.split("Epochs")[0]
    assert training_status(first) == "training DIETClassifier"
    assert training_status(TRAIN_LOG) == (
        "training DIETClassifier [#######.............] 14/40 epochs")
    later = TRAIN_LOG + ("\n2026-12-04 05:30:13 INFO     rasa.engine.training.hooks  - Starting "
                         "to train component 'RulePolicy'.\n")
    assert training_status(later) == "training RulePolicy"  # the epochs were DIET's


def test_a_failed_training_shows_the_end_of_its_output(tmp_path, capsys):
    log = tmp_path / "train.log"
    with pytest.raises(SystemExit, match="training failed"):
        run_with_progress([sys.executable, "-c", "import sys; print('the data is invalid'); "
                           "sys.exit(3)"], log, tmp_path, {})
    assert "the data is invalid" in capsys.readouterr().err


def test_error_lines_of_the_logs_are_repeated_once_and_whole(tmp_path):
    rasa, desk = tmp_path / "rasa.log", tmp_path / "desk.log"
    rasa.write_text("2026-12-04 INFO  rasa.core  - Rasa server is up and running.\n"
                    "/x/sqlalchemy.py:1: MovedIn20Warning: deprecated\n"
                    "2026-12-04 ERROR rasa.core.actions  - Failed to run custom action\n"
                    "2026-12-04 ERROR rasa.core  - half a li")
    echo = ErrorEcho({"rasa": rasa, "desk": desk})  # the desk has not written yet
    assert echo.scan() == ["[rasa] 2026-12-04 ERROR rasa.core.actions  - Failed to run custom "
                           "action"]
    with open(rasa, "a") as f:
        f.write("ne, finished\nTraceback (most recent call last):\n")
    desk.write_text("CRITICAL the desk cannot reach its database\n")
    assert echo.scan() == ["[rasa] 2026-12-04 ERROR rasa.core  - half a line, finished",
                           "[rasa] Traceback (most recent call last):",
                           "[desk] CRITICAL the desk cannot reach its database"]
    assert echo.scan() == []
