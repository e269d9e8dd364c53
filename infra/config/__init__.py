"""Typed, validated stack config: one model per top-level key group, read once at start."""

from infra.config.base import PROJECT, ConfigError
from infra.config.stack import SECRETS, StackConfig, load_config, parse_stack_config

__all__ = ["PROJECT", "SECRETS", "ConfigError", "StackConfig", "load_config", "parse_stack_config"]
