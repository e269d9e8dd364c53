"""The label on every image (each layer buildah keeps for --layers too) and container that the
container test makes, so that `make clean` (tests/container/clean.py) removes those and nothing
else from the machine's container storage."""

MADE_BY = "org.kube-image-processing.made-by"
MADE_BY_TESTS = f"{MADE_BY}=container-test"
