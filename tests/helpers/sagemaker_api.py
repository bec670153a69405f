"""SageMaker calls moto lacks, answered by botocore's Stubber (responses validated against the same
service model), everything else sent to the real moto server."""

from typing import Any

from botocore.stub import Stubber


class PartlyStubbed:
    """A SageMaker client whose ``stubbed`` operations go to a Stubber, the rest to ``client``."""

    def __init__(self, client: Any, stubbed: Any, *operations: str) -> None:
        self.client, self.stubbed, self.operations = client, stubbed, operations
        self.stubber = Stubber(stubbed)
        self.stubber.activate()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stubbed if name in self.operations else self.client, name)
