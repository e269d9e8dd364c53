"""Typed, validated stack config: one model per top-level key group, read once at start."""

from infra.config.base import PROJECT, ConfigError
from infra.config.stack import SECRETS, SET_SECRET, StackConfig, parse_stack_config

__all__ = ["PROJECT", "SECRETS", "SET_SECRET", "ConfigError", "StackConfig", "parse_stack_config"]
