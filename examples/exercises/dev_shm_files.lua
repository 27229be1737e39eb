-- Exercise (POSIX course, "the /dev/shm filesystem"): objects are files in tmpfs, named semaphores are sem.NAME there, contents outlive their writer, rm is shm_unlink
--
-- usage: shmhost exercises/dev_shm_files
--
-- On Linux, POSIX shared memory is a tmpfs mounted at /dev/shm: shm_open("/x") opens the file
-- /dev/shm/x, and a named semaphore "/y" is the small file /dev/shm/sem.y. So:
--   1. ls -l /dev/shm shows both, with their sizes and permissions;
--   2. objects have kernel persistence: what one process writes is there for the next one
--      that opens the object, after the writer has exited (until removal or reboot); the
--      bytes of a freshly sized object read as zeros;
--   3. rm of the file is shm_unlink: the name is gone at once (shm_open fails with ENOENT),
--      while a process that has it mapped keeps the memory until it unmaps it.
local shm = require "shmhost"
local uv = require "luv"
local E = require "exercise"

local function ls_line(path)
  local st = uv.fs_stat(path)
  if not st then return nil end
  return ("%s  %o  %d bytes"):format(path, st.mode & 0x1ff, st.size), st
end

local WRITER = [[
local shm = require "shmhost"
-- Created here and kept: it must outlive this process.
local seg = assert(shm.open(arg[1], {create = true, excl = true, size = 8192, mode = "0640", keep = true}))
seg:write(0, "written by pid " .. shm.pid() .. "\0")
seg:close()
]]

local READER = [[
local shm = require "shmhost"
local seg = assert(shm.open(arg[1]))
print(seg:read(0, 64):match("^[^%z]*") .. "|zeros past it: " .. tostring(seg:read(4096, 4096) == string.rep("\0", 4096)))
]]

E.run(function()
  local name, semname = E.name("file"), E.name("sem")
  E.on_exit(function()
    local s = shm.open(name)
    if s then s:unlink(); s:close() end
  end)

  -- 2a. A process that creates, writes, keeps the object and exits.
  local w = E.run_shmhost{"-e", WRITER, name, timeout = 15}
  if not E.check(w.code == 0, "the writer ran (" .. w:status() .. ")") then E.show(w) end
  local sem <close> = assert(shm.sem_open(semname, {create = true, excl = true, value = 1}))

  -- 1. What /dev/shm shows.
  print("1. in /dev/shm:")
  local line1, st1 = ls_line("/dev/shm" .. name)
  local line2, st2 = ls_line("/dev/shm/sem." .. semname:sub(2))
  print("   " .. tostring(line1))
  print("   " .. tostring(line2) .. "   (the named semaphore " .. semname .. ")")
  E.check(st1 and st1.size == 8192 and st1.mode & 0x1ff == tonumber("640", 8), "the object is a file of its size and mode")
  E.check(st2 ~= nil, "the named semaphore is the file sem." .. semname:sub(2))

  -- 2b. The writer is gone; another process finds its bytes.
  local r = E.run_shmhost{"-e", READER, name, timeout = 15}
  local text, zeros = r.stdout:match("^([^|]*)|zeros past it: (%a+)")
  print(("\n2. writer pid %d has exited; a new process reads: %q; the rest is zeros: %s")
        :format(w.pid, tostring(text), tostring(zeros)))
  E.check(text == "written by pid " .. w.pid and zeros == "true", "the contents outlived their writer")

  -- 3. rm is shm_unlink; a mapping outlives the name.
  local seg <close> = assert(shm.open(name))
  assert(os.remove("/dev/shm" .. name))
  local again, err = shm.open(name)
  print("\n3. after rm /dev/shm" .. name .. ":")
  print("   shm_open: " .. tostring(again and "found" or err))
  print("   the mapping this process holds still reads: " .. seg:read(0, 64):match("^[^%z]*"))
  E.check(again == nil and err:find("No such file or directory", 1, true), "the name is gone")
  E.check(seg:read(0, 15) == "written by pid ", "the mapping still works")
  return "/dev/shm holds the objects as files: persistent until unlinked, mapped memory outlives the name"
end)
