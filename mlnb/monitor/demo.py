"""The demo: a model and a prediction log made from the bundled example, for the templates' demo mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class DemoInputs:
    """What the templates' demo mode runs on (never on the user's data): see :func:`demo_inputs`."""

    result: Any  # the demo model's TrainResult
    log: Any  # the simulated prediction log's directory
    requests: "pd.DataFrame"  # the requests: request_id, date, the features, the true label
    labels: "pd.DataFrame"  # request_id, row, label of the requests whose labels "arrived"


def demo_inputs(directory: Any, labelled_until: str = "2015-01-01") -> DemoInputs:
    """Fit a model on the bundled example's 2012 and log its answers to 2013–2015, one request a day.

    The log is written with the server's own code (:func:`mlnb.predlog.entries`), each day's
    request timed at noon of that day; the labels of the days before ``labelled_until`` have
    "arrived", the later ones not yet.
    """
    from pathlib import Path

    import pandas as pd

    from mlnb import metrics, predlog
    from mlnb.data import seattle_weather
    from mlnb.predict import Scorer

    df = seattle_weather()
    reference = df[df["date"] < "2013-01-01"].drop(columns=["date"])
    result = metrics.train(reference, "weather", None, "sklearn.ensemble.HistGradientBoostingClassifier",
                           {"max_iter": 100}, 0.25, 0)
    later = df[df["date"] >= "2013-01-01"].reset_index(drop=True)
    later["request_id"] = [f"demo-{d:%Y%m%d}" for d in later["date"]]
    scores = Scorer(result.model)(later[result.features])
    directory = Path(directory)
    for old in predlog.log_files(directory):
        old.unlink()
    out = predlog.PredictionLog(directory)
    rows = later[result.features].to_dict("records")
    for i, row in enumerate(rows):
        when = (later["date"].iloc[i] + pd.Timedelta(hours=12)).timestamp()
        out.append(predlog.entries(later["request_id"].iloc[i], when, [row], name="demo", version=1, uri="demo/1",
                                   task="classification", target="weather", features=result.features,
                                   predictions=[scores.predictions[i]], probabilities=[scores.probabilities[i]],
                                   classes=scores.classes))
    out.close()
    arrived = later[later["date"] < labelled_until]
    labels = pd.DataFrame({"request_id": arrived["request_id"], "row": 0, "label": arrived["weather"].astype(str)})
    return DemoInputs(result, directory, later, labels.reset_index(drop=True))
