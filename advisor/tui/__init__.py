"""The Textual app: a guided interview, the recommendation, live training and the results."""

from advisor.tui.app import FinetuneAdvisorApp, create_app

__all__ = ["FinetuneAdvisorApp", "create_app"]
