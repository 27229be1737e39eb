-- The shared-memory objects of this machine, read from /dev/shm, /proc/sysvipc/shm and /proc:
-- the listing behind `shmhost ls` and `shmhost rm --stale`.
--
-- What lsipc and ipcs cannot tell comes from /proc/PID/maps: every mapping of a POSIX object
-- names /dev/shm/NAME with the file's inode, and every System V attach shows as
-- "/SYSV<key in hex> (deleted)" with the segment's id in the inode column. A process that
-- holds a descriptor without mapping (between shm_open and mmap) is found in /proc/PID/fd.
local uv = require "luv"

local M = {}

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function scandir(dir)
  local names = {}
  local h = uv.fs_scandir(dir)
  while h do
    local name, kind = uv.fs_scandir_next(h)
    if not name then break end
    names[#names + 1] = {name = name, type = kind}
  end
  return names
end

-- A process is alive while /proc has its directory (a zombie still has one, and still counts:
-- it has not been reaped, so its pid is not reused yet).
function M.alive(pid)
  return pid ~= nil and pid > 0 and uv.fs_stat("/proc/" .. pid) ~= nil
end

local passwd
function M.owner(uid)
  if not passwd then
    passwd = {}
    for line in (readfile("/etc/passwd") or ""):gmatch("[^\n]+") do
      local name, id = line:match("^([^:]*):[^:]*:(%d+):")
      if name then passwd[tonumber(id)] = passwd[tonumber(id)] or name end
    end
  end
  return passwd[uid] or tostring(uid)
end

local function add(set, key, pid)
  local s = set[key]
  if not s then
    s = {}
    set[key] = s
  end
  s[pid] = true
end

local function sorted(set)
  local list = {}
  for pid in pairs(set or {}) do list[#list + 1] = pid end
  table.sort(list)
  return list
end

-- Which processes map or hold what: {shm = {[inode] = {[pid] = true}}, sysv = {[id] = ...},
-- fds = {[inode] = ...}}. Processes we may not inspect are skipped.
function M.scan_processes()
  local r = {shm = {}, sysv = {}, fds = {}}
  local shm_dev = uv.fs_stat("/dev/shm")
  for _, e in ipairs(scandir("/proc")) do
    local pid = tonumber(e.name)
    if pid and e.name:match("^%d+$") then
      local maps = readfile("/proc/" .. pid .. "/maps") or ""
      for line in maps:gmatch("[^\n]+") do
        -- address perms offset dev inode path
        local inode, path = line:match("^%S+%s+%S+%s+%S+%s+%S+%s+(%d+)%s+(.+)$")
        if path then
          if path:sub(1, 9) == "/dev/shm/" then
            add(r.shm, tonumber(inode), pid)
          elseif path:sub(1, 5) == "/SYSV" then
            add(r.sysv, tonumber(inode), pid)
          end
        end
      end
      local fddir = "/proc/" .. pid .. "/fd"
      for _, f in ipairs(scandir(fddir)) do
        local link = uv.fs_readlink(fddir .. "/" .. f.name)
        if link and link:sub(1, 9) == "/dev/shm/" then
          local st = uv.fs_stat(fddir .. "/" .. f.name)
          if st and shm_dev and st.dev == shm_dev.dev then add(r.fds, st.ino, pid) end
        end
      end
    end
  end
  return r
end

-- Every object: a list of tables with kind ("posix", "sem", "sysv"), name (POSIX) or key
-- (System V), id, size, mode, uid, gid, owner, nattch, cpid, cpid_alive, lpid, pids (the live
-- processes that map it), holders (that have it open), removed (System V, marked), stale.
function M.list()
  local procs = M.scan_processes()
  local objs = {}
  for _, e in ipairs(scandir("/dev/shm")) do
    local st = uv.fs_lstat("/dev/shm/" .. e.name)
    if st and st.type == "file" then
      local sem = e.name:sub(1, 4) == "sem."
      local pids = sorted(procs.shm[st.ino])
      local holders = sorted(procs.fds[st.ino])
      objs[#objs + 1] = {
        kind = sem and "sem" or "posix",
        name = "/" .. (sem and e.name:sub(5) or e.name),
        path = "/dev/shm/" .. e.name,
        size = st.size, mode = st.mode & 4095, uid = st.uid, gid = st.gid,
        owner = M.owner(st.uid), nattch = #pids, pids = pids, holders = holders,
        stale = #pids == 0 and #holders == 0,
      }
    end
  end
  local sysv = readfile("/proc/sysvipc/shm") or ""
  local first = true
  for line in sysv:gmatch("[^\n]+") do
    if first then
      first = false
    else
      local f = {}
      for w in line:gmatch("%S+") do f[#f + 1] = w end
      -- key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime ...
      local key, id, perms = tonumber(f[1]), tonumber(f[2]), tonumber(f[3], 8)
      local cpid, nattch = tonumber(f[5]), tonumber(f[7])
      if id then
        local alive = M.alive(cpid)
        objs[#objs + 1] = {
          kind = "sysv", key = key & 0xffffffff, id = id, name = string.format("0x%08x", key & 0xffffffff),
          size = tonumber(f[4]), mode = perms & 511, removed = perms & 512 ~= 0,
          cpid = cpid, cpid_alive = alive, lpid = tonumber(f[6]), nattch = nattch,
          uid = tonumber(f[8]), gid = tonumber(f[9]), owner = M.owner(tonumber(f[8])),
          pids = sorted(procs.sysv[id]), holders = {},
          stale = nattch == 0 and not alive,
        }
      end
    end
  end
  table.sort(objs, function(a, b)
    if a.kind ~= b.kind then return a.kind < b.kind end
    if a.kind == "sysv" then return a.id < b.id end
    return a.name < b.name
  end)
  return objs
end

-- Keeps the objects whose name (or key in hex) contains `match` (plain text), all when nil.
function M.filter(objs, match)
  if not match then return objs end
  local out = {}
  for _, o in ipairs(objs) do
    if o.name:find(match, 1, true) then out[#out + 1] = o end
  end
  return out
end

-- ------------------------------------------------------------ JSON

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r"}
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- Encodes nil, booleans, numbers, strings, arrays (tables with [1] or marked empty arrays) and
-- objects (keys in sorted order, so the output is stable).
function M.json(v)
  local t = type(v)
  if v == nil then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return string.format("%.17g", v)
  end
  if t == "string" then return json_string(v) end
  if t == "table" then
    local parts = {}
    if #v > 0 or next(v) == nil then
      for i = 1, #v do parts[i] = M.json(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for i, k in ipairs(keys) do parts[i] = json_string(k) .. ":" .. M.json(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode a " .. t .. " as JSON")
end

return M
