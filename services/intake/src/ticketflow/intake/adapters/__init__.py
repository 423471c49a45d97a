"""Intake's outbound I/O: its tables (`intake_tables`, `portals`), the `chat.inbound` producer
(`chat_inbound`), the reply relay to `chat.replies` (`replies`), and Bitrix24's REST `user.admin`
(`portal_admin`)."""
