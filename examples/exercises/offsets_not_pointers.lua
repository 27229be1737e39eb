-- Exercise (POSIX course, "pointers in shared memory"): a linked list in a segment mapped at different addresses in two processes, linked by offsets, walked by the other process
--
-- usage: shmhost exercises/offsets_not_pointers [NODES]
--
-- mmap(NULL, ...) lets the kernel choose where a mapping goes, so the same object usually
-- sits at a different address in each process: a pointer stored in shared memory means
-- nothing to the other side. The course's rule: store `target - base` (an offset from the
-- start of the mapping) and turn it back into an address with `base + offset`.
-- This script builds a linked list in a POSIX object: nodes taken from a pool in a shuffled
-- order (so the list does not simply run through memory), each holding the offset of the
-- next node, 0 ending the list. Another process maps the object, prints where its mapping
-- is (from /proc/self/maps; this process prints its own), walks the list by offsets and
-- reports every value and their sum.
local shm = require "shmhost"
local E = require "exercise"

local nodes = math.tointeger(tonumber(arg[1] or "50"))
if not nodes or nodes < 1 or nodes > 100000 then
  io.stderr:write("usage: shmhost exercises/offsets_not_pointers [NODES 1..100000]\n")
  os.exit(2)
end

-- The head of the list, then the pool of nodes. `next` is an offset from the start of the
-- segment; offset 0 is the header itself, so it can mean "no next node".
local Header = shm.layout{ {"first", "uint32_t"}, {"count", "uint32_t"} }
local Node = shm.layout{ {"next", "uint32_t"}, {"value", "int32_t"}, {"label", "char[24]"} }
local POOL = (Header.size + Node.align - 1) // Node.align * Node.align

-- Where this process mapped the object, read from /proc/self/maps (the file is
-- /dev/shm/NAME there).
local WHERE = [[
local function where(name)
  for line in io.lines("/proc/self/maps") do
    local from, path = line:match("^(%x+)%-%x+%s.-%s(/%S+)$")
    if path == "/dev/shm" .. name then return "0x" .. from end
  end
  return "?"
end
]]
local where = load(WHERE .. "return where")()

local WALKER = WHERE .. [[
local shm = require "shmhost"
local Header = shm.layout{ {"first", "uint32_t"}, {"count", "uint32_t"} }
local Node = shm.layout{ {"next", "uint32_t"}, {"value", "int32_t"}, {"label", "char[24]"} }
local seg = assert(shm.open(arg[1], {readonly = true}))
print("mapped at " .. where(arg[1]))
local h = Header:view(seg)
local off, n, sum, labels = h.first, 0, 0, {}
while off ~= 0 do
  -- base + offset: a view of the node at that offset of this process's own mapping.
  local node = Node:view(seg, off)
  n, sum = n + 1, sum + node.value
  if n <= 5 then labels[#labels + 1] = node.label end
  if n > h.count then error("the list loops: more nodes than the header counts") end
  off = node.next
end
print(("walked %d nodes, sum %d, first labels %s"):format(n, sum, table.concat(labels, " ")))
]]

E.run(function()
  local name = E.name("list")
  local seg <close> = assert(shm.open(name, {create = true, excl = true,
                                             size = POOL + nodes * Node.size}))
  -- Take the pool's slots in a shuffled order, so that following `next` jumps around.
  local order = {}
  for i = 1, nodes do order[i] = i end
  for i = nodes, 2, -1 do
    local j = math.random(i)
    order[i], order[j] = order[j], order[i]
  end
  local function offset_of(slot) return POOL + (slot - 1) * Node.size end
  local sum = 0
  for k, slot in ipairs(order) do
    local node = Node:view(seg, offset_of(slot))
    node.value = k * k
    node.label = "node" .. k
    node.next = k < nodes and offset_of(order[k + 1]) or 0
    sum = sum + k * k
  end
  local h = Header:view(seg)
  h.count = nodes
  h.first = offset_of(order[1])
  print(("built a list of %d nodes (sum of values %d); first node at offset %d"):format(nodes, sum, h.first))
  print("this process mapped the object at " .. where(name))

  local w = E.run_shmhost{"-e", WALKER, name, timeout = 30}
  for line in w.stdout:gmatch("[^\n]+") do print("the other process " .. line) end
  if not E.check(w.code == 0, "the walker ended cleanly (" .. w:status() .. ")") then E.show(w) end
  local n, got = w.stdout:match("walked (%d+) nodes, sum (%-?%d+)")
  E.check(tonumber(n) == nodes and tonumber(got) == sum, "the other process walked the whole list by offsets")
  local theirs = w.stdout:match("mapped at (%S+)")
  if theirs == where(name) then
    print("(this time both mappings happen to sit at the same address; offsets work either way)")
  end
  return ("%d nodes linked by offsets, walked in another address space"):format(nodes)
end)
