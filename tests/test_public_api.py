"""The public API is what perfgate.__all__ says, and each name is there."""

from __future__ import annotations

import perfgate


def test_all_names_the_public_api_and_each_is_importable() -> None:
    assert perfgate.__all__ == [
        "Check",
        "CheckStatus",
        "Comparison",
        "EndpointDetails",
        "GateReport",
        "Kind",
        "Metric",
        "Outcome",
        "QueryDetails",
        "Rounds",
        "Status",
        "Verdict",
        "__version__",
    ]
    for name in perfgate.__all__:
        assert getattr(perfgate, name) is not None, name
    assert perfgate.Status.PASSED == "passed"
    assert f"{perfgate.Outcome.REGRESSION}" == "regression"
