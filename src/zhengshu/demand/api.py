"""Placeholder mounted by web/routes.py; the feature owner replaces this file."""

from fastapi import APIRouter

router = APIRouter()
