<?php
// Front controller for PHP's built-in web server: maps /simplesaml/<script>.php/<path info>
// onto SimpleSAMLphp's www directory the way Apache's Alias does.
$www = $_SERVER['DOCUMENT_ROOT'];  // -t of php -S
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if (!is_string($path) || strpos($path, '/simplesaml/') !== 0 || strpos($path, '..') !== false) {
    http_response_code(404);
    return true;
}
$rest = substr($path, strlen('/simplesaml'));
if ($rest === '/') {
    $rest = '/index.php';
}
if (preg_match('#^(/[^?]*?\.php)(/.*)?$#', $rest, $m)) {
    $script = $www . $m[1];
    if (!is_file($script)) {
        http_response_code(404);
        return true;
    }
    $_SERVER['SCRIPT_FILENAME'] = $script;
    $_SERVER['SCRIPT_NAME'] = '/simplesaml' . $m[1];
    $_SERVER['PHP_SELF'] = '/simplesaml' . $rest;
    if (isset($m[2]) && $m[2] !== '') {
        $_SERVER['PATH_INFO'] = $m[2];
    } else {
        unset($_SERVER['PATH_INFO']);
    }
    chdir(dirname($script));
    require $script;
    return true;
}
$file = $www . $rest;
if (!is_file($file)) {
    http_response_code(404);
    return true;
}
$types = ['css' => 'text/css', 'js' => 'application/javascript', 'png' => 'image/png',
          'svg' => 'image/svg+xml', 'ico' => 'image/x-icon', 'woff' => 'font/woff', 'woff2' => 'font/woff2'];
$ext = strtolower(pathinfo($file, PATHINFO_EXTENSION));
header('Content-Type: ' . ($types[$ext] ?? 'application/octet-stream'));
readfile($file);
return true;
