-- Remove shared-memory objects by name, System V id or 0xKEY, or --stale ones no live process uses
--
-- usage: shmhost rm NAME|ID|0xKEY...
--        shmhost rm --stale [--match TEXT] [--dry-run]
--
-- NAME is a POSIX shared-memory name ("/x"; the slash may be left out), or a named semaphore's name when no segment has
-- it; ID a System V segment id, 0xKEY a System V key. Removal is shm_unlink or IPC_RMID: a
-- process that still maps the object keeps its mapping until it lets go.
-- --stale removes POSIX objects and semaphores that no live process maps or holds open, and
-- System V segments with no attach whose creator is dead (what `shmhost ls` marks "stale").
-- --match limits it to names (or keys in hex) containing TEXT; --dry-run only says what it
-- would remove. Each removal prints one line; failures go to stderr and the status is 1.
local shm = require "shmhost"
local objects = require "shmobjects"
local cli = require "cli"

local USAGE = [==[
usage: shmhost rm NAME|ID|0xKEY...
       shmhost rm --stale [--match TEXT] [--dry-run]]==]

local o = cli.parse(arg, {
  prog = "rm", usage = USAGE,
  defaults = {targets = {}, stale = false, dry = false},
  {"--stale"},
  {"--dry-run", key = "dry"},
  {"--match", cli.string},
  positional = function(o, word)
    o.targets[#o.targets + 1] = word
    return true
  end,
})
local targets, stale, match, dry = o.targets, o.stale, o.match, o.dry
-- Names, or --stale: one of the two.
if stale == (#targets > 0) then cli.usage_error() end
if match and not stale then cli.usage_error("--match goes with --stale") end

local failed = false
local function report(ok, what, msg)
  if ok then print((dry and "would remove " or "removed ") .. what)
  else
    cli.say(msg)
    failed = true
  end
end

-- A System V segment: attached read-only just long enough to mark it (IPC_RMID). With
-- `only_stale`, it is spared when someone attached it since the listing.
local function remove_sysv(seg, err, only_stale)
  if not seg then return report(false, nil, err) end
  local what = string.format("sysv 0x%08x (id %d)", seg.key & 0xffffffff, seg.id)
  if only_stale then
    local st = seg:stat()
    if not st or st.nattch > 1 then
      seg:detach()
      return
    end
  end
  local ok, rerr = true, nil
  if not dry then ok, rerr = seg:remove() end
  seg:detach()
  report(ok, what, rerr)
end

-- A POSIX name: the segment if /dev/shm has it, else the named semaphore of that name.
local function remove_posix(name, kind)
  local sem = kind == "sem" or (kind == nil and io.open("/dev/shm" .. name) == nil and
                                io.open("/dev/shm/sem." .. name:sub(2)) ~= nil)
  if sem then
    local path = "/dev/shm/sem." .. name:sub(2)
    local ok, err = true, nil
    if not dry then ok, err = os.remove(path) end
    -- os.remove says "PATH: message"; say it as sem_unlink would.
    return report(ok, "sem " .. name, err and ("sem_unlink " .. name .. err:gsub("^[^:]*", "")))
  end
  if dry then return report(io.open("/dev/shm" .. name) ~= nil, "posix " .. name,
                            "shm_unlink " .. name .. ": No such file or directory") end
  local seg, err, errno = shm.open(name, {readonly = true})
  if errno == shm.errno.ENOENT then err = "shm_unlink " .. name .. ": No such file or directory" end
  if not seg then return report(false, name, err) end
  local ok, uerr = seg:unlink()
  seg:close()
  report(ok, "posix " .. name, uerr)
end

local function remove_target(t)
  if t:match("^0[xX]%x+$") then
    return remove_sysv(shm.sysv(tonumber(t), {readonly = true}))
  end
  if t:match("^%d+$") then
    return remove_sysv(shm.sysv_attach(tonumber(t), {readonly = true}))
  end
  if t:sub(1, 1) ~= "/" then t = "/" .. t end
  if #t < 2 or t:find("/", 2, true) or #t > 256 then
    return report(false, t, string.format("'%s' is not a POSIX name (/NAME), an id or a 0xKEY", t))
  end
  remove_posix(t)
end

if stale then
  for _, o in ipairs(objects.filter(objects.list(), match)) do
    if o.stale then
      if o.kind == "sysv" then
        local seg, err = shm.sysv_attach(o.id, {readonly = true})
        remove_sysv(seg, err, true)
      else
        remove_posix(o.name, o.kind)
      end
    end
  end
else
  for _, t in ipairs(targets) do remove_target(t) end
end
shm.exit(failed and 1 or 0)
