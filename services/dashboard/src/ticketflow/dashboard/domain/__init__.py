"""Pure: the agents' actions as lifecycle commands, the page's texts in Russian and English, display helpers."""
