"""The sharing-and-exchange landing page links every delivery channel, and each link leads to a working page."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_catalog_pages import HTML, login
from tests.factories import World


def test_the_landing_page_links_every_channel_and_each_opens(client: TestClient, world: World) -> None:
    anonymous = client.get("/exchange", headers=HTML, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    login(client, "hrss_officer")
    page = client.get("/exchange", headers=HTML)
    assert page.status_code == 200
    for href, title in (
        ("/gateway", "接口服务"),
        ("/exchange/sync-jobs", "库表交换"),
        ("/exchange/packages", "文件交换"),
        ("/exchange/ferry", "安全摆渡"),
        ("/open/manage", "数据开放"),
    ):
        assert f'href="{href}"' in page.text and title in page.text
        assert client.get(href, headers=HTML).status_code == 200, href
