// Idempotent user management for the mongodb role; run as
//   ADG_MONGODB_SPEC='{"port":..,"replica_set":"..","members":[..],"users":[{user,pwd,roles}]}' \
//   mongosh --nodb --quiet --norc --file mongodb-users.js
// The first user in the list is the admin: created through the localhost exception while no user exists,
// and used to create or fix the others. Prints one JSON line: {"changed": [...]}.
const spec = JSON.parse(process.env.ADG_MONGODB_SPEC);
const base = `127.0.0.1:${spec.port}/admin?directConnection=true`;
const changed = [];

function connectAs(user, pwd) {
  return new Mongo(`mongodb://${encodeURIComponent(user)}:${encodeURIComponent(pwd)}@${base}&authSource=admin`);
}

function canLogin(user, pwd) {
  try {
    const conn = connectAs(user, pwd);
    conn.getDB('admin').runCommand({ ping: 1 });
    conn.close();
    return true;
  } catch (e) {
    return false;
  }
}

function waitForPrimary(conn) {
  for (let i = 0; i < 60; i++) {
    if (conn.getDB('admin').runCommand({ hello: 1 }).isWritablePrimary) return;
    sleep(1000);
  }
  throw new Error('no primary after 60s');
}

const rolesKey = (roles) => JSON.stringify(roles.map((r) => `${r.db}.${r.role}`).sort());
const [admin, ...others] = spec.users;

if (!canLogin(admin.user, admin.pwd)) {
  // Localhost exception: only allowed while the server has no user at all. If users exist, the
  // vaulted admin password is wrong and this throws, failing the task loudly.
  const anon = new Mongo(`mongodb://${base}`);
  if (spec.replica_set) {
    const status = anon.getDB('admin').runCommand({ replSetGetStatus: 1 });
    if (status.code === 94) {  // NotYetInitialized
      anon.getDB('admin').runCommand({
        replSetInitiate: { _id: spec.replica_set, members: spec.members.map((host, i) => ({ _id: i, host })) },
      });
      changed.push('replica set initiated');
    }
    waitForPrimary(anon);
  }
  anon.getDB('admin').createUser({ user: admin.user, pwd: admin.pwd, roles: admin.roles });
  changed.push(admin.user);
}

const conn = connectAs(admin.user, admin.pwd);
const adminDb = conn.getDB('admin');
for (const u of others) {
  const existing = adminDb.getUser(u.user);
  if (!existing) {
    adminDb.createUser({ user: u.user, pwd: u.pwd, roles: u.roles });
    changed.push(u.user);
    continue;
  }
  if (rolesKey(existing.roles) !== rolesKey(u.roles)) {
    adminDb.updateUser(u.user, { roles: u.roles });
    changed.push(`${u.user} roles`);
  }
  if (!canLogin(u.user, u.pwd)) {
    adminDb.updateUser(u.user, { pwd: u.pwd });
    changed.push(`${u.user} password`);
  }
}
print(JSON.stringify({ changed }));
