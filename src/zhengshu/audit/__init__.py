"""Tamper-evident audit log: SM3 hash chain, append-only tables, verification and search.

Feature modules call ``from zhengshu.audit import service as audit_service`` and
``audit_service.record(session, actor=..., action=...)`` inside their own transaction.
"""
