"""Cases (Vorgänge): opening by application, reference numbers, the status table, history."""
