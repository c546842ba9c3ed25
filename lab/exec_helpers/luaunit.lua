-- Minimal stand-in for luaunit (not packaged in Debian): what MultiPL-E's Lua tests use,
-- assertEquals (deep, for tables) and LuaUnit.run() (runs global test* functions, returns
-- the number of failures, which the tests pass to os.exit).
local M = { LuaUnit = {} }

local function equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function show(v)
  if type(v) ~= 'table' then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. '=' .. show(x) end
  return '{' .. table.concat(parts, ', ') .. '}'
end

function M.assertEquals(actual, expected)
  if not equal(actual, expected) then
    error('expected: ' .. show(expected) .. ', actual: ' .. show(actual), 2)
  end
end

function M.LuaUnit.run()
  local names = {}
  for name, value in pairs(_G) do
    if type(value) == 'function' and name:lower():sub(1, 4) == 'test' then names[#names + 1] = name end
  end
  table.sort(names)
  local failures = 0
  for _, name in ipairs(names) do
    local ok, message = pcall(_G[name])
    if not ok then
      failures = failures + 1
      io.stderr:write(name .. ' FAILED: ' .. tostring(message) .. '\n')
    end
  end
  return failures
end

return M
