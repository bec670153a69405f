"""kx hands MLflow all of a run's params and tags in one call; MlflowClient.log_batch splits the batch."""

from kx.tracking.mlflow_tracker import MLflowRun


def test_more_params_and_tags_than_one_mlflow_batch_holds_are_all_stored(mlflow_store):
    from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

    many = 2 * MAX_PARAMS_TAGS_PER_BATCH + 7
    run = MLflowRun(mlflow_store, "kx")
    run.start(None, {}, None)
    run.log_params({f"p{i}": str(i) for i in range(many)})
    run.set_tags({f"t{i}": str(i) for i in range(many)})
    stored = run.client.get_run(run.run_id).data
    assert not run.failed
    assert stored.params == {f"p{i}": str(i) for i in range(many)}
    assert {f"t{i}": str(i) for i in range(many)}.items() <= stored.tags.items()
