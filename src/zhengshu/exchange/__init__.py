"""Sharing and exchange (数据共享交换): table exchange, file exchange, the secure ferry."""
