"""hmmfast.mlflow against a real local MLflow tracking store and registry (sqlite in a
temporary directory): the round trip is bit for bit, the pyfunc scores sessions as
score_batch does, tags and fit history land on the run."""

import warnings

import numpy as np
import pytest

import hmmfast

mlflow = pytest.importorskip("mlflow")
pd = pytest.importorskip("pandas")
hmlflow = pytest.importorskip("hmmfast.mlflow")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating its schema takes seconds)."""
    tmp_path = tmp_path_factory.mktemp("mlflow")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("hmm", artifact_location=(tmp_path / "art").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    yield tmp_path
    if mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def fitted_categorical():
    truth = hmmfast.CategoricalHMM(2)
    truth.startprob_ = [0.6, 0.4]
    truth.transmat_ = [[0.8, 0.2], [0.3, 0.7]]
    truth.emissionprob_ = [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]
    rng = np.random.default_rng(0)
    seqs = [truth.sample(int(rng.integers(5, 40)), random_state=s)[0][:, 0] for s in range(50)]
    model = hmmfast.CategoricalHMM(2, n_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(np.concatenate(seqs), [len(s) for s in seqs])
    return model, seqs


def test_round_trip_tags_and_history(store):
    model, seqs = fitted_categorical()
    with mlflow.start_run() as run:
        uri = hmlflow.log_model(model, "hmm", registered_model_name="sessions")
    assert uri == f"runs:/{run.info.run_id}/hmm"
    back = hmlflow.load_model(uri)
    assert type(back) is hmmfast.CategoricalHMM
    assert back.fingerprint == model.fingerprint
    np.testing.assert_array_equal(back.score_batch(seqs), model.score_batch(seqs))
    # the registry's version 1 is the same model
    assert hmlflow.load_model("models:/sessions/1").fingerprint == model.fingerprint
    logged = mlflow.get_run(run.info.run_id)
    assert logged.data.tags["hmmfast.fingerprint"] == model.fingerprint
    assert logged.data.tags["hmmfast.training_data_sha256"] == \
        model._fit_record["training_data_sha256"]
    assert logged.data.tags["hmmfast.class"] == "CategoricalHMM"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id,
                                                       "hmmfast.log_likelihood")
    steps = sorted(history, key=lambda m: m.step)
    np.testing.assert_allclose([m.value for m in steps], model.monitor_.history, rtol=1e-12)
    assert [m.step for m in steps] == list(range(len(model.monitor_.history)))
    assert logged.data.metrics["hmmfast.n_iter"] == model.monitor_.iter


def test_pyfunc_scores_a_frame_of_sessions(store):
    model, seqs = fitted_categorical()
    uri = hmlflow.log_model(model, "hmm")  # no active run: one is started and ended
    assert mlflow.active_run() is None
    scorer = mlflow.pyfunc.load_model(uri)
    frame = pd.DataFrame({"obs": [s.tolist() for s in seqs[:10]]},
                         index=[f"s{i}" for i in range(10)])
    out = scorer.predict(frame)
    assert list(out.index) == list(frame.index)
    np.testing.assert_array_equal(out["score"].to_numpy(), model.score_batch(seqs[:10]))
    np.testing.assert_array_equal(out["n_obs"].to_numpy(), [len(s) for s in seqs[:10]])
    one = scorer.predict(pd.DataFrame({"obs": [np.array([0, 1, 2])]}))  # arrays too
    assert one["score"][0] == pytest.approx(model.score([0, 1, 2]), rel=1e-12)
    with pytest.raises(hmmfast.HMMInputError, match="column 'obs'"):
        scorer.predict(pd.DataFrame({"x": [[0]]}))
    with pytest.raises(hmmfast.HMMInputError, match="session 0"):
        scorer.predict(pd.DataFrame({"obs": [[0.5, 1.0]]}))


def test_pyfunc_frames(store):
    model = hmmfast.GaussianHMM(2, "diag")
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.9, 0.1], [0.1, 0.9]]
    model.means_ = [[0.0, 0.0], [3.0, 3.0]]
    model.covars_ = np.ones((2, 2))
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(int(rng.integers(3, 9)), 2)) for _ in range(5)]
    uri = hmlflow.log_model(model, "gauss")
    out = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"obs": [s.tolist() for s in seqs]}))
    np.testing.assert_allclose(out["score"].to_numpy(), model.score_batch(seqs), rtol=1e-12)
    with pytest.raises(hmmfast.HMMInputError, match="n_features=2"):
        mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"obs": [[[1.0, 2.0, 3.0]]]}))


def test_save_model_refuses_an_existing_directory(tmp_path):
    model, _ = fitted_categorical()
    hmlflow.save_model(model, tmp_path / "m")
    assert (tmp_path / "m" / "MLmodel").exists()
    with pytest.raises(FileExistsError):
        hmlflow.save_model(model, tmp_path / "m")
    assert hmlflow.load_model(str(tmp_path / "m")).fingerprint == model.fingerprint
