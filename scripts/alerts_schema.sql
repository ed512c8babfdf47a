-- The alerts job's configuration tables (docs/jobs/alerts.md §2, §3) with the AWS blog's two rules.
-- psql -h HOST -p PORT -U USER -f scripts/alerts_schema.sql
CREATE TABLE alert_rule (
  rule_id    integer PRIMARY KEY,
  template   text    NOT NULL,   -- 'co_occurrence' | 'sequence'
  alert_type text    NOT NULL,
  priority   integer NOT NULL,   -- larger = more important
  within_ms  integer NOT NULL,
  params     jsonb   NOT NULL,   -- first, second, unless (event classes) and revoke (a list of them)
  enabled    boolean NOT NULL DEFAULT true
);
CREATE TABLE device_sla (device_id integer PRIMARY KEY, info text, overrides text, delay_ms integer NOT NULL DEFAULT 0);
INSERT INTO alert_rule (rule_id, template, alert_type, priority, within_ms, params) VALUES
  (1, 'co_occurrence', 'A_AND_B', 5, 60000,
   '{"first": {"message": "fault", "err_code": 1}, "second": {"message": "fault", "err_code": 2},
     "unless": {"message": "recover", "err_code": 1}, "revoke": [{"message": "recover", "err_code": 1}, {"message": "run"}]}'),
  (2, 'sequence', 'C_THEN_ALARM', 8, 60000,
   '{"first": {"message": "fault", "err_code": 3}, "second": {"message": "alarm"},
     "unless": {"message": "run"}, "revoke": [{"message": "run"}, {"message": "recover", "err_code": 3}]}');
