from tests.gcdemo_runs import gcdemo

__all__ = ["gcdemo"]
