"""The VLA chunk policy: config, model (backbone + action expert + critic expert), text, export, runtimes.

    from corft_ros.core.policy.config import PolicyConfig
    from corft_ros.core.policy.model import ChunkPolicy
"""
