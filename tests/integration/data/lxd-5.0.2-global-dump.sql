PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE schema (
    id         INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at DATETIME NOT NULL,
    UNIQUE (version)
);
INSERT INTO schema VALUES(1,60,'2026-12-02 16:30:00+00:00');
CREATE TABLE certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    fingerprint TEXT NOT NULL,
    type INTEGER NOT NULL,
    name TEXT NOT NULL,
    certificate TEXT NOT NULL,
    restricted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (fingerprint)
);
CREATE TABLE IF NOT EXISTS "certificates_projects" (
	certificate_id INTEGER NOT NULL,
	project_id INTEGER NOT NULL,
	FOREIGN KEY (certificate_id) REFERENCES certificates (id) ON DELETE CASCADE,
	FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE,
	UNIQUE (certificate_id, project_id)
);
CREATE TABLE IF NOT EXISTS "cluster_groups" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (name)
);
INSERT INTO cluster_groups VALUES(1,'default','Default cluster group');
CREATE TABLE config (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    UNIQUE (key)
);
CREATE TABLE IF NOT EXISTS "images" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    fingerprint TEXT NOT NULL,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    public INTEGER NOT NULL DEFAULT 0,
    architecture INTEGER NOT NULL,
    creation_date DATETIME,
    expiry_date DATETIME,
    upload_date DATETIME NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0,
    last_use_date DATETIME,
    auto_update INTEGER NOT NULL DEFAULT 0,
    project_id INTEGER NOT NULL,
    type INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project_id, fingerprint),
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
INSERT INTO images VALUES(1,'f260dc26023d11989346697a0b51106c11112e2e77eb817a709973f20e371264','busybox-1.35.0.tar.gz',1033500,0,2,'2026-12-02 16:30:01+00:00','1970-01-01 00:00:00+00:00','2026-12-02 16:30:01.734582341+00:00',0,'2026-12-02 16:30:03.589203010+00:00',0,1,0);
CREATE TABLE IF NOT EXISTS "images_aliases" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    image_id INTEGER NOT NULL,
    description TEXT NOT NULL,
    project_id INTEGER NOT NULL,
    UNIQUE (project_id, name),
    FOREIGN KEY (image_id) REFERENCES "images" (id) ON DELETE CASCADE,
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
INSERT INTO images_aliases VALUES(1,'busybox',1,'',1);
INSERT INTO images_aliases VALUES(2,'bb-second',1,'',1);
CREATE INDEX images_aliases_project_id_idx ON images_aliases (project_id);
CREATE TABLE IF NOT EXISTS "images_nodes" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    image_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    UNIQUE (image_id, node_id),
    FOREIGN KEY (image_id) REFERENCES "images" (id) ON DELETE CASCADE,
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE
);
INSERT INTO images_nodes VALUES(1,1,1);
CREATE TABLE IF NOT EXISTS "images_profiles" (
	image_id INTEGER NOT NULL,
	profile_id INTEGER NOT NULL,
	FOREIGN KEY (image_id) REFERENCES "images" (id) ON DELETE CASCADE,
	FOREIGN KEY (profile_id) REFERENCES "profiles" (id) ON DELETE CASCADE,
	UNIQUE (image_id, profile_id)
);
INSERT INTO images_profiles VALUES(1,1);
INSERT INTO images_profiles VALUES(1,2);
CREATE INDEX images_project_id_idx ON images (project_id);
CREATE TABLE IF NOT EXISTS "images_properties" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    image_id INTEGER NOT NULL,
    type INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    FOREIGN KEY (image_id) REFERENCES "images" (id) ON DELETE CASCADE
);
INSERT INTO images_properties VALUES(1,1,0,'name','busybox-1.35');
INSERT INTO images_properties VALUES(2,1,0,'os','busybox');
INSERT INTO images_properties VALUES(3,1,0,'release','1.35');
INSERT INTO images_properties VALUES(4,1,0,'variant','default');
INSERT INTO images_properties VALUES(5,1,0,'architecture','x86_64');
INSERT INTO images_properties VALUES(6,1,0,'description','BusyBox v1.35.0 static');
CREATE TABLE IF NOT EXISTS "images_source" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    image_id INTEGER NOT NULL,
    server TEXT NOT NULL,
    protocol INTEGER NOT NULL,
    certificate TEXT NOT NULL,
    alias TEXT NOT NULL,
    FOREIGN KEY (image_id) REFERENCES "images" (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "instances" (
    id INTEGER primary key AUTOINCREMENT NOT NULL,
    node_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    architecture INTEGER NOT NULL,
    type INTEGER NOT NULL,
    ephemeral INTEGER NOT NULL DEFAULT 0,
    creation_date DATETIME NOT NULL DEFAULT 0,
    stateful INTEGER NOT NULL DEFAULT 0,
    last_use_date DATETIME,
    description TEXT NOT NULL,
    project_id INTEGER NOT NULL,
    expiry_date DATETIME,
    UNIQUE (project_id, name),
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE,
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
INSERT INTO instances VALUES(1,1,'crun',2,0,0,'2026-12-02 16:30:01.803441053+00:00',0,'2026-12-02 16:30:02.091712737+00:00','',1,'0001-01-01 00:00:00+00:00');
INSERT INTO instances VALUES(2,1,'cstop',2,0,0,'2026-12-02 16:30:02.181085610+00:00',0,'2026-12-02 16:30:02.379194657+00:00','',1,'0001-01-01 00:00:00+00:00');
INSERT INTO instances VALUES(3,1,'cvol',2,0,0,'2026-12-02 16:30:03.578864040+00:00',0,'2026-12-02 16:30:03.867149955+00:00','',1,'0001-01-01 00:00:00+00:00');
CREATE TABLE IF NOT EXISTS "instances_backups" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    instance_id INTEGER NOT NULL,
    name VARCHAR(255) NOT NULL,
    creation_date DATETIME,
    expiry_date DATETIME,
    container_only INTEGER NOT NULL default 0,
    optimized_storage INTEGER NOT NULL default 0,
    FOREIGN KEY (instance_id) REFERENCES "instances" (id) ON DELETE CASCADE,
    UNIQUE (instance_id, name)
);
CREATE TABLE IF NOT EXISTS "instances_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    instance_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    FOREIGN KEY (instance_id) REFERENCES "instances" (id) ON DELETE CASCADE,
    UNIQUE (instance_id, key)
);
INSERT INTO instances_config VALUES(1,1,'image.description','BusyBox v1.35.0 static');
INSERT INTO instances_config VALUES(2,1,'image.release','1.35');
INSERT INTO instances_config VALUES(3,1,'volatile.base_image','f260dc26023d11989346697a0b51106c11112e2e77eb817a709973f20e371264');
INSERT INTO instances_config VALUES(4,1,'image.variant','default');
INSERT INTO instances_config VALUES(5,1,'volatile.uuid','0657899c-8aef-42c0-9764-9cb8ced2bbef');
INSERT INTO instances_config VALUES(6,1,'volatile.cloud-init.instance-id','703ab691-eb1a-4303-b4cd-db167e92259e');
INSERT INTO instances_config VALUES(7,1,'image.architecture','x86_64');
INSERT INTO instances_config VALUES(8,1,'image.name','busybox-1.35');
INSERT INTO instances_config VALUES(9,1,'image.os','busybox');
INSERT INTO instances_config VALUES(10,1,'volatile.idmap.next','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(11,1,'volatile.idmap.base','0');
INSERT INTO instances_config VALUES(13,1,'volatile.eth0.hwaddr','00:16:3e:05:8c:ca');
INSERT INTO instances_config VALUES(15,1,'volatile.last_state.idmap','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(16,1,'volatile.idmap.current','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(17,1,'volatile.eth0.host_name','veth460495b6');
INSERT INTO instances_config VALUES(18,1,'volatile.last_state.power','RUNNING');
INSERT INTO instances_config VALUES(19,2,'image.architecture','x86_64');
INSERT INTO instances_config VALUES(20,2,'image.description','BusyBox v1.35.0 static');
INSERT INTO instances_config VALUES(21,2,'image.os','busybox');
INSERT INTO instances_config VALUES(22,2,'image.release','1.35');
INSERT INTO instances_config VALUES(23,2,'volatile.uuid','d48c21b4-508f-4c56-81ef-811acffa2f59');
INSERT INTO instances_config VALUES(24,2,'image.variant','default');
INSERT INTO instances_config VALUES(25,2,'volatile.base_image','f260dc26023d11989346697a0b51106c11112e2e77eb817a709973f20e371264');
INSERT INTO instances_config VALUES(26,2,'volatile.cloud-init.instance-id','e5093d25-8f95-4ce8-8930-0cfe85f25802');
INSERT INTO instances_config VALUES(27,2,'image.name','busybox-1.35');
INSERT INTO instances_config VALUES(28,2,'volatile.idmap.next','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(29,2,'volatile.idmap.base','0');
INSERT INTO instances_config VALUES(31,2,'volatile.eth0.hwaddr','00:16:3e:07:e8:e1');
INSERT INTO instances_config VALUES(33,2,'volatile.last_state.idmap','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(34,2,'volatile.idmap.current','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(37,2,'volatile.last_state.power','STOPPED');
INSERT INTO instances_config VALUES(67,3,'volatile.base_image','f260dc26023d11989346697a0b51106c11112e2e77eb817a709973f20e371264');
INSERT INTO instances_config VALUES(68,3,'volatile.idmap.base','0');
INSERT INTO instances_config VALUES(69,3,'volatile.idmap.next','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(70,3,'image.description','BusyBox v1.35.0 static');
INSERT INTO instances_config VALUES(71,3,'image.name','busybox-1.35');
INSERT INTO instances_config VALUES(72,3,'image.release','1.35');
INSERT INTO instances_config VALUES(73,3,'image.os','busybox');
INSERT INTO instances_config VALUES(74,3,'image.variant','default');
INSERT INTO instances_config VALUES(75,3,'volatile.uuid','620ae642-aeb0-46de-b143-f4a98f2184ff');
INSERT INTO instances_config VALUES(76,3,'image.architecture','x86_64');
INSERT INTO instances_config VALUES(77,3,'volatile.cloud-init.instance-id','96307400-24f2-45f5-82c7-7645c6e18594');
INSERT INTO instances_config VALUES(78,3,'volatile.eth0.hwaddr','00:16:3e:a8:6f:63');
INSERT INTO instances_config VALUES(80,3,'volatile.last_state.idmap','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(81,3,'volatile.idmap.current','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_config VALUES(82,3,'volatile.eth0.host_name','veth5ceb0f4a');
INSERT INTO instances_config VALUES(83,3,'volatile.last_state.power','RUNNING');
CREATE TABLE IF NOT EXISTS "instances_devices" (
    id INTEGER primary key AUTOINCREMENT NOT NULL,
    instance_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    type INTEGER NOT NULL default 0,
    FOREIGN KEY (instance_id) REFERENCES "instances" (id) ON DELETE CASCADE,
    UNIQUE (instance_id, name)
);
INSERT INTO instances_devices VALUES(1,1,'root',2);
INSERT INTO instances_devices VALUES(3,3,'vol1',2);
INSERT INTO instances_devices VALUES(4,3,'web',8);
CREATE TABLE IF NOT EXISTS "instances_devices_config" (
    id INTEGER primary key AUTOINCREMENT NOT NULL,
    instance_device_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    FOREIGN KEY (instance_device_id) REFERENCES "instances_devices" (id) ON DELETE CASCADE,
    UNIQUE (instance_device_id, key)
);
INSERT INTO instances_devices_config VALUES(1,1,'pool','bt');
INSERT INTO instances_devices_config VALUES(2,1,'type','disk');
INSERT INTO instances_devices_config VALUES(3,1,'path','/');
INSERT INTO instances_devices_config VALUES(8,3,'path','/mnt/vol1');
INSERT INTO instances_devices_config VALUES(9,3,'pool','bt');
INSERT INTO instances_devices_config VALUES(10,3,'source','vol1');
INSERT INTO instances_devices_config VALUES(11,3,'type','disk');
INSERT INTO instances_devices_config VALUES(12,4,'type','proxy');
INSERT INTO instances_devices_config VALUES(13,4,'connect','tcp:127.0.0.1:80');
INSERT INTO instances_devices_config VALUES(14,4,'listen','tcp:127.0.0.1:53289');
CREATE INDEX instances_node_id_idx ON instances (node_id);
CREATE TABLE IF NOT EXISTS "instances_profiles" (
    id INTEGER primary key AUTOINCREMENT NOT NULL,
    instance_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    apply_order INTEGER NOT NULL default 0,
    UNIQUE (instance_id, profile_id),
    FOREIGN KEY (instance_id) REFERENCES "instances" (id) ON DELETE CASCADE,
    FOREIGN KEY (profile_id) REFERENCES "profiles"(id) ON DELETE CASCADE
);
INSERT INTO instances_profiles VALUES(1,1,1,1);
INSERT INTO instances_profiles VALUES(2,1,3,2);
INSERT INTO instances_profiles VALUES(3,2,1,1);
INSERT INTO instances_profiles VALUES(6,3,1,1);
CREATE INDEX instances_project_id_and_name_idx ON instances (project_id,
    name);
CREATE INDEX instances_project_id_and_node_id_and_name_idx ON instances (project_id,
    node_id,
    name);
CREATE INDEX instances_project_id_and_node_id_idx ON instances (project_id,
    node_id);
CREATE INDEX instances_project_id_idx ON instances (project_id);
CREATE TABLE IF NOT EXISTS "instances_snapshots" (
    id INTEGER primary key AUTOINCREMENT NOT NULL,
    instance_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    creation_date DATETIME NOT NULL DEFAULT 0,
    stateful INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL,
    expiry_date DATETIME,
    UNIQUE (instance_id, name),
    FOREIGN KEY (instance_id) REFERENCES "instances" (id) ON DELETE CASCADE
);
INSERT INTO instances_snapshots VALUES(1,2,'snap0','2026-12-02 16:30:03.467274225+00:00',0,'','0001-01-01 00:00:00+00:00');
CREATE TABLE IF NOT EXISTS "instances_snapshots_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    instance_snapshot_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    FOREIGN KEY (instance_snapshot_id) REFERENCES "instances_snapshots" (id) ON DELETE CASCADE,
    UNIQUE (instance_snapshot_id, key)
);
INSERT INTO instances_snapshots_config VALUES(1,1,'image.variant','default');
INSERT INTO instances_snapshots_config VALUES(2,1,'volatile.base_image','f260dc26023d11989346697a0b51106c11112e2e77eb817a709973f20e371264');
INSERT INTO instances_snapshots_config VALUES(3,1,'volatile.cloud-init.instance-id','e5093d25-8f95-4ce8-8930-0cfe85f25802');
INSERT INTO instances_snapshots_config VALUES(4,1,'volatile.eth0.hwaddr','00:16:3e:07:e8:e1');
INSERT INTO instances_snapshots_config VALUES(5,1,'volatile.uuid','d48c21b4-508f-4c56-81ef-811acffa2f59');
INSERT INTO instances_snapshots_config VALUES(6,1,'image.description','BusyBox v1.35.0 static');
INSERT INTO instances_snapshots_config VALUES(7,1,'volatile.idmap.current','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_snapshots_config VALUES(8,1,'volatile.last_state.idmap','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO instances_snapshots_config VALUES(9,1,'image.os','busybox');
INSERT INTO instances_snapshots_config VALUES(12,1,'volatile.last_state.power','STOPPED');
INSERT INTO instances_snapshots_config VALUES(13,1,'image.architecture','x86_64');
INSERT INTO instances_snapshots_config VALUES(14,1,'image.name','busybox-1.35');
INSERT INTO instances_snapshots_config VALUES(15,1,'image.release','1.35');
INSERT INTO instances_snapshots_config VALUES(16,1,'volatile.idmap.base','0');
INSERT INTO instances_snapshots_config VALUES(17,1,'volatile.idmap.next','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
CREATE TABLE IF NOT EXISTS "instances_snapshots_devices" (
    id INTEGER primary key AUTOINCREMENT NOT NULL,
    instance_snapshot_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    type INTEGER NOT NULL default 0,
    FOREIGN KEY (instance_snapshot_id) REFERENCES "instances_snapshots" (id) ON DELETE CASCADE,
    UNIQUE (instance_snapshot_id, name)
);
CREATE TABLE IF NOT EXISTS "instances_snapshots_devices_config" (
    id INTEGER primary key AUTOINCREMENT NOT NULL,
    instance_snapshot_device_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    FOREIGN KEY (instance_snapshot_device_id) REFERENCES "instances_snapshots_devices" (id) ON DELETE CASCADE,
    UNIQUE (instance_snapshot_device_id, key)
);
CREATE TABLE IF NOT EXISTS "networks" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    project_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    type INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project_id, name),
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
INSERT INTO networks VALUES(1,1,'mg3ec26552','',1,0);
CREATE TABLE IF NOT EXISTS "networks_acls" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    project_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    ingress TEXT NOT NULL,
    egress TEXT NOT NULL,
    UNIQUE (project_id, name),
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "networks_acls_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    network_acl_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    UNIQUE (network_acl_id, key),
    FOREIGN KEY (network_acl_id) REFERENCES "networks_acls" (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "networks_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    network_id INTEGER NOT NULL,
    node_id INTEGER,
    key TEXT NOT NULL,
    value TEXT,
    UNIQUE (network_id, node_id, key),
    FOREIGN KEY (network_id) REFERENCES "networks" (id) ON DELETE CASCADE,
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE
);
INSERT INTO networks_config VALUES(1,1,NULL,'ipv4.address','10.3.143.1/24');
INSERT INTO networks_config VALUES(2,1,NULL,'ipv4.firewall','false');
INSERT INTO networks_config VALUES(3,1,NULL,'ipv4.nat','false');
INSERT INTO networks_config VALUES(4,1,NULL,'ipv6.address','none');
CREATE TABLE IF NOT EXISTS "networks_forwards" (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	network_id INTEGER NOT NULL,
	node_id INTEGER,
	listen_address TEXT NOT NULL,
	description TEXT NOT NULL,
	ports TEXT NOT NULL,
	UNIQUE (network_id, node_id, listen_address),
	FOREIGN KEY (network_id) REFERENCES "networks" (id) ON DELETE CASCADE,
	FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "networks_forwards_config" (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	network_forward_id INTEGER NOT NULL,
	key VARCHAR(255) NOT NULL,
	value TEXT,
	UNIQUE (network_forward_id, key),
	FOREIGN KEY (network_forward_id) REFERENCES "networks_forwards" (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "networks_nodes" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    network_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    UNIQUE (network_id, node_id),
    FOREIGN KEY (network_id) REFERENCES "networks" (id) ON DELETE CASCADE,
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE
);
INSERT INTO networks_nodes VALUES(1,1,1,1);
CREATE TABLE IF NOT EXISTS "networks_peers" (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	network_id INTEGER NOT NULL,
	name TEXT NOT NULL,
	description TEXT NOT NULL,
	target_network_project TEXT NULL,
	target_network_name TEXT NULL,
	target_network_id INTEGER NULL,
	UNIQUE (network_id, name),
	UNIQUE (network_id, target_network_project, target_network_name),
	UNIQUE (network_id, target_network_id),
	FOREIGN KEY (network_id) REFERENCES "networks" (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "networks_peers_config" (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	network_peer_id INTEGER NOT NULL,
	key VARCHAR(255) NOT NULL,
	value TEXT,
	UNIQUE (network_peer_id, key),
	FOREIGN KEY (network_peer_id) REFERENCES "networks_peers" (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX networks_unique_network_id_node_id_key ON "networks_config" (network_id, IFNULL(node_id, -1), key);
CREATE TABLE IF NOT EXISTS "networks_zones" (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	project_id INTEGER NOT NULL,
	name TEXT NOT NULL,
	description TEXT NOT NULL,
	UNIQUE (name),
	FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "networks_zones_config" (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	network_zone_id INTEGER NOT NULL,
	key VARCHAR(255) NOT NULL,
	value TEXT,
	UNIQUE (network_zone_id, key),
	FOREIGN KEY (network_zone_id) REFERENCES "networks_zones" (id) ON DELETE CASCADE
);
CREATE TABLE networks_zones_records (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	network_zone_id INTEGER NOT NULL,
	name TEXT NOT NULL,
	description TEXT NOT NULL,
	entries TEXT NOT NULL,
	UNIQUE (name),
	FOREIGN KEY (network_zone_id) REFERENCES networks_zones (id) ON DELETE CASCADE
);
CREATE TABLE networks_zones_records_config (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	network_zone_record_id INTEGER NOT NULL,
	key VARCHAR(255) NOT NULL,
	value TEXT,
	UNIQUE (network_zone_record_id, key),
	FOREIGN KEY (network_zone_record_id) REFERENCES networks_zones_records (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "nodes" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    address TEXT NOT NULL,
    schema INTEGER NOT NULL,
    api_extensions INTEGER NOT NULL,
    heartbeat DATETIME DEFAULT CURRENT_TIMESTAMP,
    state INTEGER NOT NULL DEFAULT 0,
    arch INTEGER NOT NULL DEFAULT 0 CHECK (arch > 0),
    failure_domain_id INTEGER DEFAULT NULL REFERENCES nodes_failure_domains (id) ON DELETE SET NULL,
    UNIQUE (name),
    UNIQUE (address)
);
INSERT INTO nodes VALUES(1,'none','','0.0.0.0',60,318,'2026-12-02 16:30:00+00:00',0,2,NULL);
CREATE TABLE IF NOT EXISTS "nodes_cluster_groups" (
    node_id INTEGER NOT NULL,
    group_id INTEGER NOT NULL,
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE,
    FOREIGN KEY (group_id) REFERENCES cluster_groups (id) ON DELETE CASCADE,
    UNIQUE (node_id, group_id)
);
INSERT INTO nodes_cluster_groups VALUES(1,1);
CREATE TABLE IF NOT EXISTS "nodes_config" (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	node_id INTEGER NOT NULL,
	key TEXT NOT NULL,
	value TEXT,
	FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE,
	UNIQUE (node_id, key)
);
CREATE TABLE nodes_failure_domains (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (name)
);
CREATE TABLE IF NOT EXISTS "nodes_roles" (
    node_id INTEGER NOT NULL,
    role INTEGER NOT NULL,
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE,
    UNIQUE (node_id, role)
);
CREATE TABLE IF NOT EXISTS "operations" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    uuid TEXT NOT NULL,
    node_id TEXT NOT NULL,
    type INTEGER NOT NULL DEFAULT 0,
    project_id INTEGER,
    UNIQUE (uuid),
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE,
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS "profiles" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    project_id INTEGER NOT NULL,
    UNIQUE (project_id, name),
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
INSERT INTO profiles VALUES(1,'default','Default LXD profile',1);
INSERT INTO profiles VALUES(2,'default','Default LXD profile for project mgproj',2);
INSERT INTO profiles VALUES(3,'extra','an extra profile',1);
INSERT INTO profiles VALUES(4,'pp','',2);
CREATE TABLE IF NOT EXISTS "profiles_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    profile_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    UNIQUE (profile_id, key),
    FOREIGN KEY (profile_id) REFERENCES "profiles"(id) ON DELETE CASCADE
);
INSERT INTO profiles_config VALUES(1,3,'user.purpose','migrate-test');
INSERT INTO profiles_config VALUES(2,3,'limits.processes','200');
CREATE TABLE IF NOT EXISTS "profiles_devices" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    profile_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    type INTEGER NOT NULL default 0,
    UNIQUE (profile_id, name),
    FOREIGN KEY (profile_id) REFERENCES "profiles" (id) ON DELETE CASCADE
);
INSERT INTO profiles_devices VALUES(1,1,'eth0',1);
INSERT INTO profiles_devices VALUES(2,1,'root',2);
CREATE TABLE IF NOT EXISTS "profiles_devices_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    profile_device_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    UNIQUE (profile_device_id, key),
    FOREIGN KEY (profile_device_id) REFERENCES "profiles_devices" (id) ON DELETE CASCADE
);
INSERT INTO profiles_devices_config VALUES(1,1,'name','eth0');
INSERT INTO profiles_devices_config VALUES(2,1,'network','mg3ec26552');
INSERT INTO profiles_devices_config VALUES(3,1,'type','nic');
INSERT INTO profiles_devices_config VALUES(4,2,'path','/');
INSERT INTO profiles_devices_config VALUES(5,2,'pool','default');
INSERT INTO profiles_devices_config VALUES(6,2,'type','disk');
CREATE INDEX profiles_project_id_idx ON profiles (project_id);
CREATE TABLE IF NOT EXISTS "projects" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (name)
);
INSERT INTO projects VALUES(1,'default','Default LXD project');
INSERT INTO projects VALUES(2,'mgproj','a project for the migration');
CREATE TABLE IF NOT EXISTS "projects_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    project_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE,
    UNIQUE (project_id, key)
);
INSERT INTO projects_config VALUES(1,1,'features.profiles','true');
INSERT INTO projects_config VALUES(2,1,'features.storage.volumes','true');
INSERT INTO projects_config VALUES(3,1,'features.networks','true');
INSERT INTO projects_config VALUES(4,1,'features.images','true');
INSERT INTO projects_config VALUES(5,2,'features.images','false');
INSERT INTO projects_config VALUES(6,2,'features.profiles','true');
INSERT INTO projects_config VALUES(7,2,'features.storage.volumes','true');
INSERT INTO projects_config VALUES(8,2,'user.tag','mg');
CREATE TABLE IF NOT EXISTS "storage_pools" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    driver TEXT NOT NULL,
    description TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    UNIQUE (name)
);
INSERT INTO storage_pools VALUES(1,'default','dir','',1);
INSERT INTO storage_pools VALUES(2,'bt','btrfs','',1);
CREATE TABLE IF NOT EXISTS "storage_pools_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    storage_pool_id INTEGER NOT NULL,
    node_id INTEGER,
    key TEXT NOT NULL,
    value TEXT,
    UNIQUE (storage_pool_id, node_id, key),
    FOREIGN KEY (storage_pool_id) REFERENCES "storage_pools" (id) ON DELETE CASCADE,
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE
);
INSERT INTO storage_pools_config VALUES(1,1,1,'source','/var/tmp/corral-mig-5rpzsduu/lxd/storage-pools/default');
INSERT INTO storage_pools_config VALUES(3,2,1,'size','1GiB');
INSERT INTO storage_pools_config VALUES(4,2,1,'source','/var/tmp/corral-mig-5rpzsduu/lxd/disks/bt.img');
CREATE TABLE IF NOT EXISTS "storage_pools_nodes" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    storage_pool_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    UNIQUE (storage_pool_id, node_id),
    FOREIGN KEY (storage_pool_id) REFERENCES "storage_pools" (id) ON DELETE CASCADE,
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE
);
INSERT INTO storage_pools_nodes VALUES(1,1,1,1);
INSERT INTO storage_pools_nodes VALUES(2,2,1,1);
CREATE UNIQUE INDEX storage_pools_unique_storage_pool_id_node_id_key ON storage_pools_config (storage_pool_id, IFNULL(node_id, -1), key);
CREATE TABLE IF NOT EXISTS "storage_volumes" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL,
    storage_pool_id INTEGER NOT NULL,
    node_id INTEGER,
    type INTEGER NOT NULL,
    description TEXT NOT NULL,
    project_id INTEGER NOT NULL,
    content_type INTEGER NOT NULL DEFAULT 0,
    UNIQUE (storage_pool_id, node_id, project_id, name, type),
    FOREIGN KEY (storage_pool_id) REFERENCES "storage_pools" (id) ON DELETE CASCADE,
    FOREIGN KEY (node_id) REFERENCES "nodes" (id) ON DELETE CASCADE,
    FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
INSERT INTO storage_volumes VALUES(1,'crun',2,1,0,'',1,0);
INSERT INTO storage_volumes VALUES(2,'f260dc26023d11989346697a0b51106c11112e2e77eb817a709973f20e371264',2,1,1,'',1,0);
INSERT INTO storage_volumes VALUES(3,'cstop',1,1,0,'',1,0);
INSERT INTO storage_volumes VALUES(5,'vol1',2,1,2,'',1,0);
INSERT INTO storage_volumes VALUES(6,'cvol',1,1,0,'',1,0);
CREATE VIEW storage_volumes_all (
         id,
         name,
         storage_pool_id,
         node_id,
         type,
         description,
         project_id,
         content_type) AS
  SELECT id,
         name,
         storage_pool_id,
         node_id,
         type,
         description,
         project_id,
         content_type
    FROM storage_volumes UNION
  SELECT storage_volumes_snapshots.id,
         printf('%s/%s',
    storage_volumes.name,
    storage_volumes_snapshots.name),
         storage_volumes.storage_pool_id,
         storage_volumes.node_id,
         storage_volumes.type,
         storage_volumes_snapshots.description,
         storage_volumes.project_id,
         storage_volumes.content_type
    FROM storage_volumes
    JOIN storage_volumes_snapshots ON storage_volumes.id = storage_volumes_snapshots.storage_volume_id;
CREATE TABLE IF NOT EXISTS "storage_volumes_backups" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    storage_volume_id INTEGER NOT NULL,
    name VARCHAR(255) NOT NULL,
    creation_date DATETIME,
    expiry_date DATETIME,
    volume_only INTEGER NOT NULL default 0,
    optimized_storage INTEGER NOT NULL default 0,
    FOREIGN KEY (storage_volume_id) REFERENCES "storage_volumes" (id) ON DELETE CASCADE,
    UNIQUE (storage_volume_id, name)
);
CREATE TRIGGER storage_volumes_check_id
  BEFORE INSERT ON storage_volumes
  WHEN NEW.id IN (SELECT id FROM storage_volumes_snapshots)
  BEGIN
    SELECT RAISE(FAIL,
    "invalid ID");
  END;
CREATE TABLE IF NOT EXISTS "storage_volumes_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    storage_volume_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    UNIQUE (storage_volume_id, key),
    FOREIGN KEY (storage_volume_id) REFERENCES "storage_volumes" (id) ON DELETE CASCADE
);
INSERT INTO storage_volumes_config VALUES(2,5,'size','64MiB');
INSERT INTO storage_volumes_config VALUES(3,5,'volatile.idmap.next','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
INSERT INTO storage_volumes_config VALUES(4,5,'volatile.idmap.last','[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":1000000000},{"Isuid":false,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":1000000000}]');
CREATE TABLE IF NOT EXISTS "storage_volumes_snapshots" (
    id INTEGER NOT NULL,
    storage_volume_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    expiry_date DATETIME,
    UNIQUE (id),
    UNIQUE (storage_volume_id, name),
    FOREIGN KEY (storage_volume_id) REFERENCES "storage_volumes" (id) ON DELETE CASCADE
);
INSERT INTO storage_volumes_snapshots VALUES(4,3,'snap0','','0001-01-01 00:00:00+00:00');
CREATE TRIGGER storage_volumes_snapshots_check_id
  BEFORE INSERT ON storage_volumes_snapshots
  WHEN NEW.id IN (SELECT id FROM storage_volumes)
  BEGIN
    SELECT RAISE(FAIL,
    "invalid ID");
  END;
CREATE TABLE IF NOT EXISTS "storage_volumes_snapshots_config" (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    storage_volume_snapshot_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    FOREIGN KEY (storage_volume_snapshot_id) REFERENCES "storage_volumes_snapshots" (id) ON DELETE CASCADE,
    UNIQUE (storage_volume_snapshot_id, key)
);
CREATE TABLE IF NOT EXISTS "warnings" (
	id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
	node_id INTEGER,
	project_id INTEGER,
	entity_type_code INTEGER,
	entity_id INTEGER,
	uuid TEXT NOT NULL,
	type_code INTEGER NOT NULL,
	status INTEGER NOT NULL,
	first_seen_date DATETIME NOT NULL,
	last_seen_date DATETIME NOT NULL,
	updated_date DATETIME,
	last_message TEXT NOT NULL,
	count INTEGER NOT NULL,
	UNIQUE (uuid),
	FOREIGN KEY (node_id) REFERENCES "nodes"(id) ON DELETE CASCADE,
	FOREIGN KEY (project_id) REFERENCES "projects" (id) ON DELETE CASCADE
);
INSERT INTO warnings VALUES(1,1,NULL,NULL,NULL,'72ea16e4-64e8-4535-a24a-9e22ea4d2d6d',14,1,'2026-12-02 16:30:00.428527865+00:00','2026-12-02 16:30:00.428527865+00:00','0001-01-01 00:00:00+00:00','Disabled because of lack of kernel support',1);
INSERT INTO warnings VALUES(2,1,NULL,NULL,NULL,'38b996bf-71f1-4328-8298-2e0854d5cdcc',2,1,'2026-12-02 16:30:00.432930682+00:00','2026-12-02 16:30:00.432930682+00:00','0001-01-01 00:00:00+00:00','disk priority will be ignored',1);
INSERT INTO warnings VALUES(3,1,NULL,NULL,NULL,'e1aa1584-75cc-4cef-852f-4fdfa924bbb5',10,1,'2026-12-02 16:30:00.435455929+00:00','2026-12-02 16:30:00.435455929+00:00','0001-01-01 00:00:00+00:00','network priority will be ignored',1);
INSERT INTO warnings VALUES(4,1,NULL,NULL,NULL,'a88e533b-e20a-44c2-bb0c-ce30e68bb076',23,1,'2026-12-02 16:30:00.437265148+00:00','2026-12-02 16:30:00.437265148+00:00','0001-01-01 00:00:00+00:00','vhost_vsock kernel module not loaded',1);
CREATE UNIQUE INDEX warnings_unique_node_id_project_id_entity_type_code_entity_id_type_code ON warnings(IFNULL(node_id, -1), IFNULL(project_id, -1), entity_type_code, entity_id, type_code);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('schema',1);
INSERT INTO sqlite_sequence VALUES('nodes',1);
INSERT INTO sqlite_sequence VALUES('projects',2);
INSERT INTO sqlite_sequence VALUES('projects_config',8);
INSERT INTO sqlite_sequence VALUES('profiles',4);
INSERT INTO sqlite_sequence VALUES('cluster_groups',1);
INSERT INTO sqlite_sequence VALUES('operations',21);
INSERT INTO sqlite_sequence VALUES('warnings',4);
INSERT INTO sqlite_sequence VALUES('storage_pools',2);
INSERT INTO sqlite_sequence VALUES('storage_pools_nodes',2);
INSERT INTO sqlite_sequence VALUES('storage_pools_config',4);
INSERT INTO sqlite_sequence VALUES('networks',1);
INSERT INTO sqlite_sequence VALUES('networks_nodes',1);
INSERT INTO sqlite_sequence VALUES('networks_config',4);
INSERT INTO sqlite_sequence VALUES('profiles_devices',2);
INSERT INTO sqlite_sequence VALUES('profiles_devices_config',6);
INSERT INTO sqlite_sequence VALUES('profiles_config',2);
INSERT INTO sqlite_sequence VALUES('images',1);
INSERT INTO sqlite_sequence VALUES('images_properties',6);
INSERT INTO sqlite_sequence VALUES('images_nodes',1);
INSERT INTO sqlite_sequence VALUES('images_aliases',2);
INSERT INTO sqlite_sequence VALUES('instances',3);
INSERT INTO sqlite_sequence VALUES('instances_devices',4);
INSERT INTO sqlite_sequence VALUES('instances_devices_config',14);
INSERT INTO sqlite_sequence VALUES('instances_config',83);
INSERT INTO sqlite_sequence VALUES('instances_profiles',6);
INSERT INTO sqlite_sequence VALUES('storage_volumes',6);
INSERT INTO sqlite_sequence VALUES('instances_snapshots',1);
INSERT INTO sqlite_sequence VALUES('instances_snapshots_config',17);
INSERT INTO sqlite_sequence VALUES('storage_volumes_config',4);
COMMIT;
