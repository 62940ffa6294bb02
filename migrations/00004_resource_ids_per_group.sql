-- +goose Up
-- A resource id is unique within its group only. With a global key, a
-- member of one group learned that an id existed in another group (the
-- insert of a fresh-looking id failed), and could squat ids that another
-- app would choose. Every query that finds a resource by id also names its
-- group, which the new key serves.
ALTER TABLE resources DROP CONSTRAINT resources_pkey;
ALTER TABLE resources ADD PRIMARY KEY (group_id, id);

-- +goose Down
ALTER TABLE resources DROP CONSTRAINT resources_pkey;
ALTER TABLE resources ADD PRIMARY KEY (id);
