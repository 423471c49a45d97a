-- Bitrix24 installs moved to ticketflow.bitrix24's `bitrix24_installs` (verified with the application's client
-- secret, with OAuth tokens). The rows here held only the application token of the first install request
-- for a portal, never verified: they are not carried over. Each portal installs the application again (or
-- sends ONAPPUPDATE), and is verified then.
DROP TABLE intake_bitrix24_portals;
