"""The report page's stylesheet, kept apart so the HTML builders stay readable."""

PAGE_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232b; margin: 0;
       background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 8px; } h2 { font-size: 20px; margin: 36px 0 10px; border-bottom: 2px solid #dde1e6;
     padding-bottom: 4px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 16px; }
dt { color: #5b6570; } dd { margin: 0; }
table { border-collapse: collapse; margin: 12px 0 18px; font-size: 13.5px; }
caption { text-align: left; font-weight: 600; padding-bottom: 6px; }
th, td { border: 1px solid #d4d9df; padding: 4px 8px; vertical-align: top; }
th { background: #eef1f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty, p.empty { color: #7a838c; font-style: italic; }
.row { display: flex; gap: 28px; flex-wrap: wrap; align-items: flex-start; }
.note { color: #3d4650; background: #f3f6f9; border-left: 4px solid #9fb3c8; padding: 8px 12px; }
.note.warn { border-left-color: #d98e04; background: #fff7e6; }
.answers { list-style: none; padding: 12px 16px; background: #f3f6f9; border: 1px solid #d4d9df; }
.answers li { margin: 6px 0; }
.good, .bad, .unknown { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; }
.good { background: #d7f2dd; color: #135c25; } .bad { background: #fbdcdc; color: #8a1414; }
.unknown { background: #fff0c2; color: #6b4e00; }
figure { margin: 12px 0 20px; } figure img { max-width: 100%; border: 1px solid #e1e5ea; }
figcaption { color: #5b6570; font-size: 13.5px; }
form { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: end; padding: 10px 12px; background: #eef1f4; }
form label { display: flex; flex-direction: column; font-size: 13px; color: #3d4650; }
details { margin: 8px 0; } summary { cursor: pointer; color: #284b73; }
"""
