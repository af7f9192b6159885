"""Numbered schema migrations, applied in order at start inside one transaction each.

Append new migrations; never edit one that has shipped. Config maps and device maps are
stored as JSON text columns: one row per object keeps reads to one query.
"""

GLOBAL = [
    # 1: the foundation
    """
    CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE nodes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        heartbeat TEXT NOT NULL DEFAULT '',
        state INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE profiles (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        devices TEXT NOT NULL DEFAULT '{}',
        UNIQUE (project, name)
    );
    CREATE TABLE warnings (
        uuid TEXT PRIMARY KEY,
        node TEXT NOT NULL DEFAULT '',
        project TEXT NOT NULL DEFAULT '',
        entity_url TEXT NOT NULL DEFAULT '',
        type TEXT NOT NULL,
        last_message TEXT NOT NULL DEFAULT '',
        severity TEXT NOT NULL DEFAULT 'low',
        status TEXT NOT NULL DEFAULT 'new',
        count INTEGER NOT NULL DEFAULT 1,
        first_seen_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        UNIQUE (node, project, entity_url, type)
    );
    INSERT INTO projects (name, description, config) VALUES ('default', 'Default LXD project',
        '{"features.images":"true","features.networks":"true","features.profiles":"true","features.storage.volumes":"true"}');
    INSERT INTO profiles (project, name, description) VALUES ('default', 'default', 'Default LXD profile');
    """,
]

LOCAL = [
    """
    CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE raft_nodes (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        role INTEGER NOT NULL DEFAULT 0,
        name TEXT NOT NULL DEFAULT ''
    );
    """,
]
