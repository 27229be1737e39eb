---@meta shmhost
-- LuaLS annotations for shmhost's Lua API (docs/DESIGN.md section 5), so an editor completes
-- and checks scripts. Point the language server at this folder ("workspace.library").
-- Conventions: misuse raises a Lua error naming the argument; a failed system call returns
-- `nil, message, errno` (message "call object: strerror"), so `assert(...)` works. Times are
-- seconds (fractions allowed). Every object has close() (idempotent), __gc and __close.

---@class shmhost
---@field version string                the shmhost version
---@field IPC_PRIVATE integer           the System V key that always creates a new segment
---@field errno table<string, integer>  errno names: shm.errno.EEXIST, shm.errno.ENOENT, ...
---@field unix shmhost.unixlib          AF_UNIX sockets
---@field ring shmhost.ringlib          the shared-memory ring
---@field MUTEX_SIZE integer            sizeof(pthread_mutex_t)
---@field SEM_SIZE integer              sizeof(sem_t)
---@field SEM_VALUE_MAX integer         the largest semaphore value
local shm = {}

-- ---------------------------------------------------------------- runtime

---Starts a task (a coroutine on the loop) running fn(...); it first runs when the caller yields.
---@param fn fun(...: any)
---@param ... any
---@return thread
function shm.spawn(fn, ...) end

---Suspends the running task for `s` seconds (default 0: let the other ready tasks run first);
---other tasks and callbacks keep running. Raises outside a task.
---@param s? number
---@return true
function shm.sleep(s) end

---Monotonic clock in seconds, nanosecond resolution.
---@return number
function shm.now() end

---The process id.
---@return integer
function shm.pid() end

---Ends the process at once after cleanup of created objects: nil or true is status 0, false
---is 1, else an integer 0..255. Does not return.
---@param code? integer|boolean
function shm.exit(code) end

---Suspends the running task until shm.resume(task, ...) is called; returns those values.
---Raises outside a task.
---@return any ...
function shm.suspend() end

---Resumes a task suspended by shm.suspend() with the given values (from a luv callback); the
---task runs from the loop after the caller's code. Raises when `task` is not suspended.
---@param task thread
---@param ... any
function shm.resume(task, ...) end

-- ---------------------------------------------------------------- segments

---@alias shmhost.mode string|integer  an octal string ("0600") or an integer

---@class shmhost.open_opts
---@field create? boolean   O_CREAT (default false)
---@field excl? boolean     O_EXCL: fail when it exists (needs create)
---@field size? integer     bytes; required and positive when creating
---@field mode? shmhost.mode permissions of a created object (default "0600")
---@field truncate? boolean O_TRUNC, then size it to `size`
---@field readonly? boolean map read-only
---@field keep? boolean     do not remove the created object at exit
---@field init? fun(seg: shmhost.segment) initializes a new object before any other process can open it

---@class shmhost.sysv_opts
---@field create? boolean   IPC_CREAT
---@field excl? boolean     IPC_EXCL (needs create)
---@field size? integer     bytes; required when creating
---@field mode? shmhost.mode (default "0600")
---@field readonly? boolean SHM_RDONLY
---@field keep? boolean     do not IPC_RMID the created segment at exit

---@class shmhost.memfd_opts
---@field size integer      bytes (required)
---@field seal? boolean     seal against growing and shrinking (no peer can truncate it)
---@field mode? shmhost.mode (default "0600")

---@alias shmhost.scalar "i8"|"i16"|"i32"|"i64"|"u8"|"u16"|"u32"|"u64"|"f32"|"f64"|"bool"

---A shared-memory segment: POSIX (shm_open), System V (shmget) or memfd.
---@class shmhost.segment
---@field name string|nil   POSIX and memfd name ("/x"); nil for System V
---@field kind "posix"|"sysv"|"memfd"
---@field key integer|nil   System V key
---@field id integer|nil    System V id
---@field created boolean   this call created the object
---@field readonly boolean  mapped read-only
local segment = {}

---POSIX shared memory by name ("/name").
---@param name string
---@param opts? shmhost.open_opts
---@return shmhost.segment|nil seg
---@return string? err
---@return integer? errno
function shm.open(name, opts) end

---System V shared memory by key (an integer, shm.IPC_PRIVATE, or from shm.ftok).
---@param key integer
---@param opts? shmhost.sysv_opts
---@return shmhost.segment|nil seg
---@return string? err
---@return integer? errno
function shm.sysv(key, opts) end

---Attaches a System V segment by id.
---@param id integer
---@param opts? {readonly?: boolean}
---@return shmhost.segment|nil seg
---@return string? err
---@return integer? errno
function shm.sysv_attach(id, opts) end

---The key C's ftok(path, proj) returns.
---@param path string
---@param proj string|integer one character, or 1-255
---@return integer|nil key
---@return string? err
---@return integer? errno
function shm.ftok(path, proj) end

---An anonymous memfd segment (pass it to a peer with sock:send).
---@param name string
---@param opts shmhost.memfd_opts
---@return shmhost.segment|nil seg
---@return string? err
---@return integer? errno
function shm.memfd(name, opts) end

---@return integer bytes mapped
function segment:size() end
---@return integer|nil fd the descriptor (nil for System V)
function segment:fd() end
---Bytes from `off` (default 0), `len` of them (default the rest); bounds-checked.
---@param off? integer
---@param len? integer
---@return string
function segment:read(off, len) end
---@param off integer
---@param s string
---@return true
function segment:write(off, s) end
---@param t shmhost.scalar
---@param off integer
---@return integer|number|boolean
function segment:get(t, off) end
---@param t shmhost.scalar
---@param off integer
---@param v integer|number|boolean
---@return true
function segment:set(t, off, v) end
---Atomic (sequentially consistent) load.
---@param t shmhost.scalar
---@param off integer
---@return integer|number|boolean
function segment:load(t, off) end
---Atomic store.
---@param t shmhost.scalar
---@param off integer
---@param v integer|number|boolean
---@return true
function segment:store(t, off, v) end
---Atomic fetch-and-add (integer types; an unsigned type also takes a negative n); returns the
---old value.
---@param t shmhost.scalar
---@param off integer
---@param n integer
---@return integer old
function segment:add(t, off, n) end
---Atomic compare-and-swap.
---@param t shmhost.scalar
---@param off integer
---@param expect integer
---@param new integer
---@return boolean ok
---@return integer old
function segment:cas(t, off, expect, new) end
---size, mode, uid, gid, removed; System V also nattch, cpid, lpid, atime, dtime, ctime, key, id.
---@return {size: integer, mode: integer, uid: integer, gid: integer, removed: boolean, nattch?: integer, cpid?: integer, lpid?: integer, atime?: integer, dtime?: integer, ctime?: integer, cuid?: integer, cgid?: integer, key?: integer, id?: integer}|nil st
---@return string? err
---@return integer? errno
function segment:stat() end
---POSIX and memfd: ftruncate and remap (System V raises).
---@param n integer
---@return true|nil ok
---@return string? err
---@return integer? errno
function segment:resize(n) end
---Removes the name (shm_unlink) or the System V segment (IPC_RMID).
---@return true|nil ok
---@return string? err
---@return integer? errno
function segment:unlink() end
---The same as unlink().
---@return true|nil ok
---@return string? err
---@return integer? errno
function segment:remove() end
---Unmaps and closes without removing now (a created object is still removed at exit unless
---kept).
---@return true
function segment:detach() end
---Unmaps and closes; removes a created object unless kept.
---@return true
function segment:close() end
---Keeps a created object after this process ends.
---@return true
function segment:keep() end
---Sleeps while the aligned 32-bit word at `off` equals `expected` (futex(2), shared between
---processes). `nil, "changed", EAGAIN` at once when the word is not `expected`; `true` when
---woken or the word changed; `nil, "timeout", ETIMEDOUT`; `nil, "closed"` when the segment is
---closed under the wait. Needs a task unless `timeout` is 0 (a check).
---@param off integer  a multiple of 4
---@param expected integer  a 32-bit value (u32 or i32)
---@param timeout? number  seconds
---@return true|nil ok
---@return string? why
---@return integer? errno
function segment:futex_wait(off, expected, timeout) end
---Wakes at most `n` (default 1; math.maxinteger: all) waiters on the word at `off`.
---@param off integer
---@param n? integer
---@return integer woken
function segment:futex_wake(off, n) end

-- ---------------------------------------------------------------- layouts

---@alias shmhost.ctype "char"|"signed char"|"unsigned char"|"bool"|"int8_t"|"uint8_t"|"int16_t"|"uint16_t"|"int32_t"|"uint32_t"|"int64_t"|"uint64_t"|"short"|"unsigned short"|"int"|"unsigned"|"unsigned int"|"long"|"unsigned long"|"long long"|"unsigned long long"|"size_t"|"ssize_t"|"pid_t"|"float"|"double"|"mutex"|"pthread_mutex_t"|"sem"|"sem_t"|"i8"|"i16"|"i32"|"i64"|"u8"|"u16"|"u32"|"u64"|"f32"|"f64"|string

---A field: {name, type [, count]}; type is a C type name, "T[N]", "char[N]" (a C string), or
---a nested layout; count makes an array of it.
---@alias shmhost.field {[1]: string, [2]: shmhost.ctype|shmhost.layout, [3]: integer?}

---A C struct layout, laid out as the platform C compiler lays out the same struct.
---@class shmhost.layout
---@field size integer   sizeof the struct (padded to its alignment)
---@field align integer  its alignment
local layout = {}

---Declares a layout. Raises on an empty list, duplicate names, unknown types, N <= 0.
---@param fields shmhost.field[]
---@return shmhost.layout
function shm.layout(fields) end

---Bytes from the start of the struct to `field` ("pos.x" reaches into nested layouts).
---@param field string
---@return integer
function layout:offset(field) end

---The fields in order: element type (a string or the nested layout), offset, size of the whole
---field, and count for arrays.
---@return {name: string, type: string|shmhost.layout, offset: integer, size: integer, count: integer?}[]
function layout:fields() end

---The #include lines and `struct NAME { ... };` that gcc compiles to the same layout.
---@param name string a C identifier
---@return string
function layout:cdecl(name) end

---A view of the struct at `offset` (default 0) in the segment: fields read and write the
---segment (integers range-checked, char[N] as strings, mutex/sem fields as objects, arrays
---as 1-based shmhost.array, nested layouts as views). The view keeps the segment alive.
---@param seg shmhost.segment
---@param offset? integer a multiple of the layout's alignment
---@return shmhost.view
function layout:view(seg, offset) end

---Field access by name: `v.counter`, `v.counter = 1`, `v.pos = {x = 1}`, pairs(v).
---@class shmhost.view
---@field [string] any

---An array field: `a[i]` for 1 <= i <= #a (outside raises, so walk it with pairs(a) or
---`for i = 1, #a`, not ipairs), `#a`, `v.arr = {...}` writes the values given.
---@class shmhost.array
---@field [integer] any
---@operator len: integer

-- ---------------------------------------------------------------- sync

---A process-shared mutex inside a segment (robust and error-checking by default).
---@class shmhost.mutex
local mutex = {}

---The mutex at byte `off` of the segment (initialize it once with m:init, or a peer did).
---@param seg shmhost.segment
---@param off integer
---@return shmhost.mutex
function shm.mutex(seg, off) end

---@param opts? {robust?: boolean, type?: "errorcheck"|"normal"|"recursive"}
---@return true|nil ok
---@return string? err
---@return integer? errno
function mutex:init(opts) end
---Locks; in a task a contended lock retries on the loop, outside one it blocks the thread.
---"owner-died": you hold it, the holder died, repair the data before unlocking. Relocking a
---mutex this task holds (or, in a callback, one any task holds) is nil, msg, EDEADLK.
---@param timeout? number seconds
---@return true|nil ok
---@return "owner-died"|"timeout"|string|nil why
---@return integer? errno
function mutex:lock(timeout) end
---@return boolean|nil ok
---@return "busy"|"owner-died"|string|nil why
---@return integer? errno
function mutex:trylock() end
---@return true|nil ok
---@return string? err
---@return integer? errno
function mutex:unlock() end
---@return true|nil ok
---@return string? err
---@return integer? errno
function mutex:consistent() end
---The hook m:with runs when the previous holder died holding the lock (nil removes it).
---@param fn? fun(m: shmhost.mutex)
---@return true
function mutex:on_owner_died(fn) end
---Locks, calls fn(...), unlocks (on error too) and returns fn's results or rethrows.
---@generic R
---@param fn fun(...: any): R
---@param ... any
---@return R ...
function mutex:with(fn, ...) end
---Drops this handle; the mutex in the segment is untouched.
---@return true
function mutex:close() end

---A POSIX semaphore: unnamed in a segment, or named.
---@class shmhost.sem
---@field name string|nil   a named semaphore's name
---@field created boolean   sem_open created it
local sem = {}

---The unnamed semaphore at byte `off` of the segment.
---@param seg shmhost.segment
---@param off integer
---@return shmhost.sem
function shm.sem(seg, off) end

---A named POSIX semaphore ("/name").
---@param name string
---@param opts? {create?: boolean, excl?: boolean, value?: integer, mode?: shmhost.mode, keep?: boolean}
---@return shmhost.sem|nil s
---@return string? err
---@return integer? errno
function shm.sem_open(name, opts) end

---@param value? integer default 0
---@return true|nil ok
---@return string? err
---@return integer? errno
function sem:init(value) end
---@return true|nil ok
---@return string? err
---@return integer? errno
function sem:post() end
---Waits without blocking the loop (needs a task only when it must wait). "closed" when the
---object is closed under the wait.
---@param timeout? number seconds
---@return true|nil ok
---@return "timeout"|"closed"|string|nil why
---@return integer? errno
function sem:wait(timeout) end
---@return boolean|nil ok
---@return "busy"|string|nil why
---@return integer? errno
function sem:trywait() end
---@return integer|nil value
---@return string? err
---@return integer? errno
function sem:value() end
---A created named semaphore outlives this process.
---@return true
function sem:keep() end
---Removes a named semaphore's name now (raises for an unnamed one).
---@return true|nil ok
---@return string? err
---@return integer? errno
function sem:unlink() end
---Closes; a created named semaphore is removed unless kept.
---@return true
function sem:close() end

-- ---------------------------------------------------------------- eventfd

---@class shmhost.eventfd
local eventfd = {}

---@param opts? {init?: integer, semaphore?: boolean}
---@return shmhost.eventfd|nil ev
---@return string? err
---@return integer? errno
function shm.eventfd(opts) end

---Adds n (default 1) to the counter.
---@param n? integer
---@return true|nil ok
---@return string? err
---@return integer? errno
function eventfd:notify(n) end
---Waits for a non-zero counter and returns it (1 in semaphore mode). Needs a task; "closed"
---when the eventfd is closed under the wait.
---@return integer|nil count
---@return "closed"|string|nil err
---@return integer? errno
function eventfd:wait() end
---The counter if non-zero, else nil, without waiting.
---@return integer|nil count
function eventfd:try() end
---Calls fn(count) as a new task on every wake-up; a read error calls fn(nil, msg, errno) once
---and drops the callback. nil stops it.
---@param fn? fun(count?: integer, err?: string, errno?: integer)
---@return true
function eventfd:on(fn) end
---@return integer
function eventfd:fd() end
---@return true
function eventfd:close() end

-- ---------------------------------------------------------------- AF_UNIX sockets

---@class shmhost.unixlib
local unixlib = {}

---@class shmhost.listen_opts
---@field path? string          a filesystem socket path
---@field abstract? string      an abstract name (no file)
---@field type? "stream"|"seqpacket"
---@field mode? shmhost.mode    permissions of the socket file (default "0600")
---@field allow_uids? integer[] other uids allowed to connect
---@field backlog? integer     1..65535 (default SOMAXCONN)
---@field keep? boolean         leave the socket path at close and exit

---@param opts shmhost.listen_opts
---@return shmhost.socket|nil srv
---@return string? err
---@return integer? errno
function unixlib.listen(opts) end

---With wait = S > 0 (needs a task), retries until a listener appears or S seconds pass.
---@param opts {path?: string, abstract?: string, type?: "stream"|"seqpacket", wait?: number}
---@return shmhost.socket|nil sock
---@return string? err
---@return integer? errno
function unixlib.connect(opts) end

---A listening or connected AF_UNIX socket.
---@class shmhost.socket
local socket = {}

---Waits (needs a task) for the next connection; "closed" when the listener is closed.
---@return shmhost.socket|nil conn
---@return "closed"|string|nil err
---@return integer? errno
function socket:accept() end
---Calls fn(conn) as a new task per connection; a failing accept calls fn(nil, msg, errno)
---once and drops the callback. nil stops it.
---@param fn? fun(conn?: shmhost.socket, err?: string, errno?: integer)
---@return true
function socket:on_accept(fn) end
---Sends bytes and objects (segments, eventfds, sockets, raw fds, descriptor numbers; at most
---253) with SCM_RIGHTS; "" with objects sends one NUL byte. In a task it completes; outside a
---task it returns what went, or nil, msg, EAGAIN. A gone peer is nil, "closed", EPIPE.
---@param bytes string
---@param objs? any[]
---@return integer|nil sent
---@return "closed"|string|nil err
---@return integer? errno
function socket:send(bytes, objs) end
---What has arrived (at most max bytes, default 64 KiB) and the received objects; waits (needs a
---task). nil, "closed" at the end.
---@param max? integer
---@return string|nil bytes
---@return any[]|string objs_or_err
---@return integer? errno
function socket:recv(max) end
---Calls fn(bytes, objs) as a new task per message, then fn(nil, "closed") (or nil, msg, errno)
---once at the end. nil stops it.
---@param fn? fun(bytes?: string, objs_or_err: any[]|string, errno?: integer)
---@return true
function socket:on_recv(fn) end
---SO_PEERCRED of the other end.
---@return {pid: integer, uid: integer, gid: integer}|nil cred
---@return string? err
---@return integer? errno
function socket:peer() end
---Leaves the socket path in place when closed and at exit.
---@return true
function socket:keep() end
---@return integer
function socket:fd() end
---Closes; waiting tasks resume with nil, "closed"; a listener removes the path it made.
---@return true
function socket:close() end

---A received descriptor of no type shmhost knows.
---@class shmhost.fd
local rawfd = {}
---@return integer
function rawfd:fd() end
---Takes the descriptor out: the object no longer closes it.
---@return integer
function rawfd:take() end
---@return {type: "file"|"directory"|"fifo"|"socket"|"char"|"block"|"link"|"other", mode: integer, size: integer, uid: integer, gid: integer, ino: integer, dev: integer}|nil st
---@return string? err
---@return integer? errno
function rawfd:stat() end
---@return true
function rawfd:close() end

-- ---------------------------------------------------------------- ring

---@class shmhost.ringlib
---@field HEADER integer bytes of the ring header before the data area (256)
local ringlib = {}

---Formats a ring of `capacity` data bytes at `off` (a multiple of 8) in the segment.
---@param seg shmhost.segment
---@param off integer
---@param capacity integer a positive multiple of 8
---@return shmhost.ring|nil r
---@return string? err
---@return integer? errno
function ringlib.create(seg, off, capacity) end

---Attaches the ring a peer created at `off`.
---@param seg shmhost.segment
---@param off integer
---@return shmhost.ring|nil r
---@return string? err
---@return integer? errno
function ringlib.attach(seg, off) end

---Bytes of segment a ring of `capacity` needs (header included).
---@param capacity integer
---@return integer
function ringlib.footprint(capacity) end

---A single-producer single-consumer queue of messages in shared memory.
---@class shmhost.ring
local ring = {}
---@param s string
---@return boolean pushed false when full
function ring:push(s) end
---Waits for room (needs a task only when it must wait).
---@param s string
---@param timeout? number
---@return true|nil ok
---@return "timeout"|"peer closed"|"peer died"|"closed"|string|nil why
---@return integer? errno
function ring:put(s, timeout) end
---@return string|nil s nil when empty
function ring:pop() end
---Waits for a message (needs a task only when it must wait).
---@param timeout? number
---@return string|nil s
---@return "timeout"|"peer closed"|"peer died"|"closed"|string|nil why
---@return integer? errno
function ring:get(timeout) end
---@return integer
function ring:capacity() end
---@return integer bytes in use
function ring:used() end
---The other side's state as seen from `role`.
---@param role "producer"|"consumer"
---@return "alive"|"closed"|"dead"
function ring:peer(role) end
---Leaves the sides this object took; waiting tasks resume with nil, "closed". Returns true.
---@return true
function ring:close() end

return shm
