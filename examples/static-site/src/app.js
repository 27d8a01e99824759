// A tiny client-side router: any path is served index.html (static.spa) and shown here.
document.getElementById('route').textContent = 'client route: ' + window.location.pathname;
