"""What a local job (local mode, the sandbox) sends out besides its checkpoints, when the request
asks as SageMaker would be asked: the model and output data uncompressed under the job's output
prefix (OutputDataConfig.CompressionType NONE), and the TensorBoard folder synced to its S3 location
while the job runs (TensorBoardOutputConfig). Storage is S3Storage or local mode's mirror: both
sync a folder (links followed, dangling ones named) with sync_up.
"""
from __future__ import annotations

from .. import contract


def uncompressed(request: dict) -> bool:
    """A request (or a job's description) with --sagemaker-output-compression none
    (OutputDataConfig.CompressionType NONE): the model is a prefix of its files, not an archive."""
    return (request.get("OutputDataConfig") or {}).get("CompressionType") == "NONE"


def model_prefix(request: dict, job: str = None) -> str:
    """Where a job of this request (named `job`: a tuning trial's) leaves its model:
    <output>/<job>/output/model/ uncompressed (the prefix SageMaker's ModelArtifacts.S3ModelArtifacts
    names then), else .../output/model.tar.gz."""
    job = job or request["TrainingJobName"]
    output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{job}/output/"
    return output + ("model/" if uncompressed(request) else "model.tar.gz")


def upload_folders(storage, folders: list, uri: str, on_skip) -> int:
    """Several hosts' folders (algo-1 first) into one prefix, uncompressed. A path more than one host
    wrote keeps algo-1's copy, as the packed archive does: the hosts go in reverse order, so algo-1
    writes last. Returns how many files went (a file of two hosts counts once per host)."""
    count = 0
    for folder in reversed(folders):
        seen = {}
        for line in storage.sync_up(folder, uri, seen) or ():
            on_skip(folder, line)
        count += len(seen)
    return count


class TensorBoardSync:
    """Each host's TensorBoard folder to the request's S3 location, every pass of the job's sync
    loop and once at the end (SageMaker uploads it while the job runs)."""

    def __init__(self, request: dict):
        config = request.get("TensorBoardOutputConfig") or {}
        self.uri = config.get("S3OutputPath")
        self.local_path = config.get("LocalPath") or contract.DEFAULT_TENSORBOARD_PATH
        self.seen = {}  # host -> scan_changes state

    def __bool__(self) -> bool:
        return bool(self.uri)

    def folder(self, layout) -> str:
        return contract.rebase(self.local_path, layout.root)

    def sync(self, storage, layouts: dict, on_line) -> None:
        """One pass over every host (algo-1 last, so its copy of a shared name stays). A failure is
        one line on the host's log and the next pass tries again: TensorBoard files never end a job."""
        import os

        for host in reversed(list(layouts)):
            folder = self.folder(layouts[host])
            if not os.path.isdir(folder):
                continue
            try:
                storage.sync_up(folder, self.uri, self.seen.setdefault(host, {}))
            except Exception as err:  # noqa: BLE001 - never the job's failure
                on_line(host, f"[aws-train-remote] TensorBoard sync failed ({type(err).__name__}: {err}); "
                              "trying again")


def copy_tensorboard(storage, request: dict, dest: str) -> int:
    """Local mode's end, with --sagemaker-tensorboard: the job's TensorBoard files from the local
    mirror of their S3 location into `dest` (--tensorboard-dir/<job>), so `tensorboard --logdir`
    reads them where a plain run leaves its own. Returns the file count."""
    import os
    import shutil

    uri = (request.get("TensorBoardOutputConfig") or {}).get("S3OutputPath")
    source = storage._path(uri.rstrip("/") + "/") if uri else None
    count = 0
    for root, _dirs, names in os.walk(source) if source and os.path.isdir(source) else ():
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), source)
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(os.path.join(root, name), os.path.join(dest, rel))
            count += 1
    return count
