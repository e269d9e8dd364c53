"""The Pulumi program that declares the platform."""
