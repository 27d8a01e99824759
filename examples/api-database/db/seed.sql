-- Seed for preview environments (database.seed: db/seed.sql). Applied once per
-- repository and seed content; later environments get a clone of the seeded database.
-- Plain SQL only: no psql meta-commands, no COPY FROM STDIN.
CREATE TABLE notes (
  id         serial PRIMARY KEY,
  text       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO notes (text) VALUES
  ('welcome to your preview environment'),
  ('this note came from db/seed.sql');
