-- List POSIX (/dev/shm) and System V shared memory with the live processes that map each (--json)
--
-- usage: shmhost ls [--json] [--match TEXT]
--
-- Like lsipc/ipcs: kind, name or key, id, size, mode, owner, attaches, the creator's pid and
-- whether it is alive; and, read from /proc, which live processes map each object (MAPPED BY),
-- which lsipc cannot tell. STATUS says "stale" for an object no live process uses (POSIX:
-- nobody maps it or holds it open; System V: no attach and its creator is dead) and "dest" for
-- a System V segment marked for removal.
local objects = require "shmobjects"
local cli = require "cli"

local USAGE = "usage: shmhost ls [--json] [--match TEXT]"

local o = cli.parse(arg, {
  prog = "ls", usage = USAGE,
  unknown = "unknown argument '%s'",
  {"--json"},
  {"--match", cli.string},
})
local json, match = o.json, o.match

local list = objects.filter(objects.list(), match)

if json then
  local out = {}
  for _, o in ipairs(list) do
    out[#out + 1] = {
      kind = o.kind, name = o.kind ~= "sysv" and o.name or nil, key = o.key, id = o.id,
      size = o.size, mode = string.format("%04o", o.mode), uid = o.uid, gid = o.gid,
      owner = o.owner, nattch = o.nattch, cpid = o.cpid, cpid_alive = o.cpid_alive,
      lpid = o.lpid, mapped_by = o.pids, open_by = o.kind ~= "sysv" and o.holders or nil,
      removed = o.removed, stale = o.stale,
    }
  end
  print(objects.json(out))
  return
end

local rows = {{"KIND", "NAME/KEY", "ID", "SIZE", "MODE", "OWNER", "NATTCH", "CPID", "MAPPED BY",
               "STATUS"}}
for _, o in ipairs(list) do
  local cpid = "-"
  if o.cpid then cpid = tostring(o.cpid) .. (o.cpid_alive and "" or "(dead)") end
  local status = o.removed and "dest" or (o.stale and "stale" or "")
  rows[#rows + 1] = {
    o.kind, o.name, o.id and tostring(o.id) or "-", tostring(o.size), string.format("%04o", o.mode),
    o.owner, tostring(o.nattch), cpid, #o.pids > 0 and table.concat(o.pids, ",") or "-", status,
  }
end

-- Columns as wide as their widest cell; numbers right-aligned, the last column unpadded.
local numeric = {[3] = true, [4] = true, [7] = true}
local width = {}
for _, r in ipairs(rows) do
  for c, cell in ipairs(r) do width[c] = math.max(width[c] or 0, #cell) end
end
for _, r in ipairs(rows) do
  local cells = {}
  for c, cell in ipairs(r) do
    if c == #r then cells[c] = cell
    elseif numeric[c] then cells[c] = string.rep(" ", width[c] - #cell) .. cell
    else cells[c] = cell .. string.rep(" ", width[c] - #cell) end
  end
  print((table.concat(cells, "  "):gsub("%s+$", "")))
end
