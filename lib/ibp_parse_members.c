/* placeholder */ typedef int ibp_placeholder_ibp_parse_members;
