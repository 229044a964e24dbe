@echo off
rem NSSM service definition for `lagscope serve`. Run in an elevated cmd prompt with nssm.exe
rem on PATH; edit the paths and the app first. See docs/windows.md.
rem
rem Stopping: NSSM sends Ctrl+C first and waits AppStopMethodConsole milliseconds, which
rem lagscope serve takes as a graceful stop (in-flight requests get --shutdown-timeout
rem seconds). AppStopMethodConsole must stay above it: 30 s drain + 15 s margin = 45000 ms.
rem AppStopMethodSkip 6 skips WM_CLOSE and WM_QUIT (a console app has no window), so the
rem next step after the Ctrl+C wait is TerminateProcess.
rem tests/test_windows_docs.py checks these numbers against serve's settings table.

nssm install lagscope-serve C:\lagscope\.venv\Scripts\python.exe
nssm set lagscope-serve AppParameters -m lagscope serve --django-settings mysite.settings --host 127.0.0.1 --port 8000 --shutdown-timeout 30
nssm set lagscope-serve AppDirectory C:\lagscope\app
nssm set lagscope-serve AppEnvironmentExtra LAGSCOPE_DATA_DIR=C:\ProgramData\lagscope PYTHONUTF8=1
nssm set lagscope-serve AppStopMethodConsole 45000
nssm set lagscope-serve AppStopMethodSkip 6
nssm set lagscope-serve AppExit Default Restart
nssm set lagscope-serve AppRestartDelay 10000
nssm set lagscope-serve AppStdout C:\ProgramData\lagscope\serve.log
nssm set lagscope-serve AppStderr C:\ProgramData\lagscope\serve.log
nssm set lagscope-serve AppRotateFiles 1
nssm set lagscope-serve AppRotateBytes 10485760
nssm set lagscope-serve ObjectName "NT AUTHORITY\LocalService"
nssm set lagscope-serve Start SERVICE_AUTO_START
