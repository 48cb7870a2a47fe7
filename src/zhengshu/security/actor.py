"""Who is acting: every service call receives an :class:`Actor`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # 平台管理员
    REVIEWER = "reviewer"  # 数据主管部门审核员
    OFFICER = "officer"  # 部门数据专员
    USER = "user"  # 部门用户

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.ADMIN: "平台管理员",
    Role.REVIEWER: "审核员",
    Role.OFFICER: "数据专员",
    Role.USER: "部门用户",
}


@dataclass(frozen=True)
class Actor:
    user_id: str | None
    username: str
    display_name: str
    org_id: str | None
    org_name: str = ""
    region_code: str | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    source_ip: str | None = None
    via: str = "web"  # web | api | cli | job

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


SYSTEM_ACTOR = Actor(
    user_id=None,
    username="system",
    display_name="系统",
    org_id=None,
    roles=frozenset({Role.ADMIN}),
    via="job",
)
