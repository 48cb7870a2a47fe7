"""``python -m zhengshu``: the same CLI as the ``zhengshu`` command."""

from zhengshu.cli.main import main

main()
