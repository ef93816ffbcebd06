/* placeholder */ typedef int ibp_placeholder_ibp_log;
