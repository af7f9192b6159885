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
    # 2: storage pools and volumes, images, instances and snapshots
    """
    CREATE TABLE storage_pools (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'Created'
    );
    CREATE TABLE storage_volumes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pool TEXT NOT NULL,
        project TEXT NOT NULL,
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        UNIQUE (pool, project, type, name)
    );
    CREATE TABLE images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        filename TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL DEFAULT 0,
        public INTEGER NOT NULL DEFAULT 0,
        auto_update INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        architecture TEXT NOT NULL DEFAULT '',
        type TEXT NOT NULL DEFAULT 'container',
        created_at TEXT NOT NULL,
        uploaded_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        last_used_at TEXT NOT NULL,
        properties TEXT NOT NULL DEFAULT '{}',
        profiles TEXT NOT NULL DEFAULT '["default"]',
        UNIQUE (project, fingerprint)
    );
    CREATE TABLE images_aliases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        UNIQUE (project, name)
    );
    CREATE TABLE instances (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        node TEXT NOT NULL DEFAULT 'none',
        type TEXT NOT NULL DEFAULT 'container',
        architecture TEXT NOT NULL DEFAULT 'x86_64',
        ephemeral INTEGER NOT NULL DEFAULT 0,
        stateful INTEGER NOT NULL DEFAULT 0,
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        last_used_at TEXT NOT NULL,
        config TEXT NOT NULL DEFAULT '{}',
        devices TEXT NOT NULL DEFAULT '{}',
        profiles TEXT NOT NULL DEFAULT '[]',
        UNIQUE (project, name)
    );
    CREATE TABLE instances_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        stateful INTEGER NOT NULL DEFAULT 0,
        description TEXT NOT NULL DEFAULT '',
        architecture TEXT NOT NULL DEFAULT 'x86_64',
        config TEXT NOT NULL DEFAULT '{}',
        devices TEXT NOT NULL DEFAULT '{}',
        profiles TEXT NOT NULL DEFAULT '[]',
        UNIQUE (instance_id, name)
    )
    """,
    # 3: the trust store (certificates of clients allowed on the HTTPS API)
    """
    CREATE TABLE certificates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL DEFAULT 'client',
        name TEXT NOT NULL DEFAULT '',
        certificate TEXT NOT NULL,
        restricted INTEGER NOT NULL DEFAULT 0,
        projects TEXT NOT NULL DEFAULT '[]'
    )
    """,
    # 4: storage volume snapshots (custom volumes)
    """
    CREATE TABLE storage_volumes_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        volume_id INTEGER NOT NULL REFERENCES storage_volumes (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        UNIQUE (volume_id, name)
    )
    """,
    # 5: networks (managed bridges and macvlan presets)
    """
    CREATE TABLE networks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL DEFAULT 'default',
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'Created',
        UNIQUE (project, name)
    )
    """,
    # 6: where a cached or copied image came from (LXD's images_source: server, protocol 0=lxd
    #    1=direct 2=simplestreams, pinned certificate, alias), for refreshes and cache reuse.
    #    IF NOT EXISTS: harmless next to a migration that makes all of LXD's tables.
    """
    CREATE TABLE IF NOT EXISTS images_source (
        id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        image_id INTEGER NOT NULL,
        server TEXT NOT NULL,
        protocol INTEGER NOT NULL,
        certificate TEXT NOT NULL,
        alias TEXT NOT NULL,
        FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE
    )
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
