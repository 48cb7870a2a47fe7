"""Named actions of the organization module."""

from __future__ import annotations

from zhengshu.security import authz
from zhengshu.security.actor import Role

authz.register("org.manage", "管理行政区划、组织机构和用户", roles={Role.ADMIN}, resource="organization")
authz.register("org.view", "查看组织机构", roles=set(Role), resource="organization")
authz.register("calendar.manage", "维护节假日安排", roles={Role.ADMIN}, resource="calendar")
