; Inno Setup 6 script: a per-user Windows installer for the PyInstaller bundle (dist\tandem\).
;
;   iscc /DAppVersion=0.1.0 packaging\windows\tandem.iss
;   iscc /DAppVersion=0.1.0 /DBundleDir=C:\path\to\dist\tandem /DOutputDir=C:\out packaging\windows\tandem.iss
;
; Relative paths are relative to this file. The installer needs no administrator rights (it installs to
; %LOCALAPPDATA%\Programs\Tandem) but offers an all-users install when run as administrator. Models, chats
; and settings live in %LOCALAPPDATA%\Tandem\Tandem and are kept on uninstall.

#define AppName "Tandem"
#define AppIdString "io.github.tandem_llm.Tandem"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef BundleDir
  #define BundleDir "..\..\dist\tandem"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
; AppId names the uninstall entry; it must never change between versions (so updates replace in place).
AppId={#AppIdString}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=The Tandem developers
AppPublisherURL=https://github.com/tandem-llm/tandem
AppSupportURL=https://github.com/tandem-llm/tandem/issues
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename=tandem-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\tandem.ico
UninstallDisplayIcon={app}\tandemw.exe
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=yes
; A running Tandem (or one of its engine workers) holds its DLLs open: ask to close it first.
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the 'tandem' command to PATH (for the command line)"; GroupDescription: "Command line:"; Flags: unchecked

[InstallDelete]
; An update replaces the whole bundle: files a previous version shipped must not linger beside the new ones.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\tandemw.exe"; AppUserModelID: "{#AppIdString}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\tandemw.exe"; AppUserModelID: "{#AppIdString}"; Tasks: desktopicon

[Registry]
; Per-user PATH entry (HKCU\Environment) for `tandem selftest` and the other CLI commands.
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; \
  Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\tandemw.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
function PathContains(Paths, Dir: string): Boolean;
begin
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') > 0;
end;

function NeedsAddPath(Dir: string): Boolean;
var
  Paths: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Paths) then
    Paths := '';
  Result := not PathContains(Paths, Dir);
end;

procedure RemovePath(Dir: string);
var
  Paths: string;
  P: Integer;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Paths) then
    exit;
  Paths := ';' + Paths + ';';
  P := Pos(';' + Uppercase(Dir) + ';', Uppercase(Paths));
  if P = 0 then
    exit;
  Delete(Paths, P, Length(Dir) + 1);
  Paths := Copy(Paths, 2, Length(Paths) - 2);
  RegWriteExpandStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Paths);
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RemovePath(ExpandConstant('{app}'));
end;
