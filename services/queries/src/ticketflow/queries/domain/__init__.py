"""The queries service's pure part: tokens and scopes, each route's parameters, cursors, the at-risk
cutoffs of the SLA board, and the answers' shapes. No I/O."""
